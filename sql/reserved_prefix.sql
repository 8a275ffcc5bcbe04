--
-- The heroku.* prefix is reserved once the library is loaded: a misspelt
-- setting is refused.  PostgreSQL 13 and 14 cannot reserve a prefix
-- (MarkGUCPrefixReserved came in 15): there the misspelt setting is kept as
-- a placeholder, with no error (expected/reserved_prefix_1.out).
--
LOAD 'heroku_resolver';
SET heroku.api_ulr = 'x';
SHOW heroku.api_ulr;
-- the real settings are unaffected
SHOW heroku.api_url;

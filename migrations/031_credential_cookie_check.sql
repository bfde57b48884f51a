-- A credential's cookie is sent as an HTTP header value: a control character (a CR or LF) would
-- split the request. `credentials add` refuses such cookies; this holds for every other way in
-- too (import-addictedproxy copies rows with COPY, never through that check). NOT VALID: rows
-- already stored are not re-checked, so the migration cannot fail on an existing database.
ALTER TABLE addicted_user_credentials
    ADD CONSTRAINT addicted_user_credentials_cookie_is_a_header
    CHECK (cookie !~ '[[:cntrl:]]' AND length(cookie) BETWEEN 1 AND 8192) NOT VALID;

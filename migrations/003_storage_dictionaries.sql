-- zstd dictionaries used to compress stored subtitles. Every dictionary ever written with is
-- kept: a frame's dictionary id selects its row on read, so old objects never need rewriting.
-- The newest row (created_at, then id) is the one new objects are written with.
CREATE TABLE storage_dictionaries (
    -- the zstd dictionary id, as written in frame headers; RFC 8878 reserves < 32768 and >= 2^31
    id bigint PRIMARY KEY CHECK (id >= 32768 AND id < 2147483648),
    data bytea NOT NULL,
    trained_on int NOT NULL CHECK (trained_on >= 0),
    -- held-out compression gain over plain zstd at training time (NULL if not measured)
    sample_ratio double precision,
    created_at timestamptz NOT NULL DEFAULT now()
);

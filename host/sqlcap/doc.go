// Package sqlcap is blockhost's SQL capability: the databases a step is
// granted, by name, and the only code that runs statements on them for a
// block — through the SQL host functions and for the built-in sql.query
// and sql.exec blocks alike. Two drivers: embedded SQLite (modernc.org/sqlite,
// pure Go, the default) and PostgreSQL (github.com/jackc/pgx/v5).
//
// A grant (Grant) comes from an operator — a manifest's sql block or the
// --allow-sql flag — never from a step's input; a block names a granted
// database and cannot reach any other. Each grant is opened once as a DB,
// whose bounded pool every step of the grant shares. The package
// guarantees that:
//
//   - statements are parameterised: the block sends statement text and a
//     list of values, and the values travel to the database apart from the
//     text (SQLite bindings, PostgreSQL's extended protocol); no API builds
//     SQL from values;
//   - one statement per call: PostgreSQL refuses a text with more than one
//     (every statement goes by the extended protocol, exec included); for
//     SQLite, whose driver would run them all, a text with anything after
//     its first statement is refused before it reaches the database;
//   - read-only, the default, is enforced by the database: a SQLite file is
//     opened read-only (mode=ro) with query_only, and an authorizer refuses
//     ATTACH, DETACH and every pragma that is not a read of the schema, so
//     no statement lifts read-only or reaches another file; a PostgreSQL
//     statement runs in a READ ONLY transaction that is then rolled back,
//     so no statement lifts read-only for the next one either. Writes under
//     read-only fail with ErrDenied carrying the database's own code;
//   - each call is its own transaction and leaves nothing on its pooled
//     connection for the next step: SQLite's authorizer refuses BEGIN,
//     SAVEPOINT and temporary objects; PostgreSQL's read-only transactions
//     are rolled back, and after a read-write statement an open
//     transaction is rolled back and the session reset (DISCARD ALL);
//   - every statement ends by the grant's timeout and by the step's
//     context, whichever comes first, and is then stopped on the server:
//     SQLite is interrupted, PostgreSQL gets a cancel request (not only a
//     closed socket, which would leave the statement running);
//   - a result is capped at max_rows rows and max_bytes encoded bytes; one
//     more stops the read — and the statement — with ErrQuota, so no result
//     is read without bound;
//   - no connection is used by two statements at once; a statement holds
//     its connection only while it runs;
//   - a DSN's secrets are never shown: Secret prints as "[redacted]",
//     Grant.String and Describe drop the password and parameters, and no
//     error quotes a DSN;
//   - every failure is an *Error of one kind (ErrDenied, ErrInvalid, …)
//     with the step error code and class the retry layer uses (Classify),
//     sorted by the database's own error code (SQLSTATE, SQLite result
//     code).
//
// What it cannot prevent: a PostgreSQL role reads whatever its privileges
// allow: grant each database a role with the least privilege it needs. A SQLite grant exposes the one file,
// and the files the operating system lets the process create beside it
// (journal, WAL).
package sqlcap

package store

import (
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// IsUnreachable reports whether err, as returned by Migrate, means that
// the database server could not be reached. That covers a refused, reset
// or timed-out connection, a host name that did not resolve, and a
// Postgres server that is starting up or shutting down (SQLSTATE 57P03).
// Other errors come from a reachable server, such as a failed login, a
// missing database or a dirty schema, and return false, as do all SQLite
// errors.
func IsUnreachable(err error) bool {
	if err == nil {
		return false
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.Code == "57P03"
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return true
	}
	// The server closed the connection during the handshake.
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

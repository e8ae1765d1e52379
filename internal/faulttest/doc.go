// Package faulttest runs the built deepmeter binary against a stand-in
// upstream and breaks things around it: SIGTERM during long streams,
// kill -9 under load, and a private PostgreSQL server that is stopped or
// locked while calls keep coming. It checks that every call is stored
// exactly once and that clients never wait on the database.
//
// The package has tests only. The PostgreSQL tests start their own server
// with initdb and pg_ctl from /usr/lib/postgresql/*/bin, run as the
// postgres OS user when the tests run as root, and skip when the binaries
// are missing unless DEEPMETER_REQUIRE_POSTGRES=1.
package faulttest

//go:build !unix

package spool

import "os"

// lockDir does nothing where flock is not available.
//
// TODO: lock the directory on Windows with LockFileEx, so two processes
// cannot share a spool there either.
func lockDir(string) (*os.File, error) { return nil, nil }

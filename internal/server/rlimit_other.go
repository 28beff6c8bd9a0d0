//go:build !unix

package server

// openFileLimit: without an open-file limit to read (Windows), assume the
// common Unix default, so limits.max_connections stays small unless set.
func openFileLimit() uint64 { return 1024 }

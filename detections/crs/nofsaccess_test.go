//go:build no_fs_access

package crs_test

// fsAccess tells the tests that Coraza was built without file-system
// access: multipart file parts stay in memory.
const fsAccess = false

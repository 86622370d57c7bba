//go:build !no_fs_access

package crs_test

// fsAccess tells the tests that Coraza may use the file system (it stores
// multipart file parts in temporary files).
const fsAccess = true

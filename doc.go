// Package xborder holds only the repository-wide tests (deps_test.go); the
// node's parts are its subpackages, as DESIGN.md lays them out.
package xborder

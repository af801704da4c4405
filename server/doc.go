// Package server answers pgquorum's HTTP API from the verdicts of package
// consensus. Handlers never touch the database or peers themselves: they read
// the Checker's cached snapshot, so a flood of health checks costs nothing
// but CPU.
package server

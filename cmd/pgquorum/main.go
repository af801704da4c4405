// Command pgquorum tells HAProxy, keepalived and operators which PostgreSQL
// node of a repmgr cluster is the real primary, by majority vote of the
// registered nodes (of its location and of the whole cluster by default),
// and with failover.mode pgquorum replaces a lost primary through an
// embedded Raft group. "serve" is the daemon; the other commands ask it
// (status, check, agent, switchover, pause, resume, failover-check), render
// HAProxy's config (haproxy-config), repair the Raft group (raft-recover),
// or describe pgquorum itself (version, man, completion).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pgquorum/pgquorum/internal/buildinfo"
)

// Exit codes shared by every subcommand.
const (
	exitOK     = 0
	exitFailed = 1 // the command ran and failed
	exitUsage  = 2 // bad flags or configuration
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries a subcommand's exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error  { return &exitError{code: exitUsage, err: err} }
func failedErr(err error) error { return &exitError{code: exitFailed, err: err} }

// run is the whole program, callable from tests with its own arguments and
// output streams.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	info := buildinfo.Get()
	root := &cobra.Command{
		Use:           "pgquorum",
		Short:         "Majority-vote primary detection for repmgr-managed PostgreSQL",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       info.Version,
	}
	root.SetVersionTemplate(versionText(info))
	root.AddCommand(newVersionCmd(stdout, info), newManCmd(root))
	root.SetArgs(args[1:])
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	root.AddCommand(newServeCmd(stdout, stderr))
	root.AddCommand(newHAProxyConfigCmd(stdout, stderr), newAgentCmd(stdout))
	root.AddCommand(newCheckCmd(stdout))
	root.AddCommand(newStatusCmd(stdout))
	root.AddCommand(newRaftRecoverCmd(stdout, stderr))
	root.AddCommand(newSwitchoverCmd(stdout), newPauseCmd(stdout), newResumeCmd(stdout), newFailoverCheckCmd(stdout))
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "pgquorum:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitUsage // cobra's own errors are about flags and arguments
}

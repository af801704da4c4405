package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/pgquorum/pgquorum/api"
)

// exitUnreachable is what "check" returns when it got no pgquorum verdict at
// all. It shares its value with exitUsage: keepalived only tells zero from
// non-zero, and both mean "do not trust this node".
const exitUnreachable = 2

const defaultCheckTimeout = 2 * time.Second

// expectation is what "check --expect" compares the local verdict with.
type expectation string

const (
	expectPrimary expectation = "primary" // 200: primary with a majority of its site
	expectStandby expectation = "standby" // 202: in recovery
	expectUp      expectation = "up"      // the local database is up: any state but Down
)

func parseExpectation(s string) (expectation, error) {
	switch e := expectation(s); e {
	case expectPrimary, expectStandby, expectUp:
		return e, nil
	}
	return "", fmt.Errorf("--expect %q: want primary, standby or up", s)
}

func (e expectation) matches(s api.State) bool {
	switch e {
	case expectPrimary:
		return s == api.StatePrimary
	case expectStandby:
		return s == api.StateStandby
	case expectUp:
		return s != api.StateDown
	}
	return false
}

// stateOfStatus inverts api.State.HTTPStatus; ok is false for a code /state
// never answers (a proxy's 502, a wrong URL's 404), which is no verdict.
func stateOfStatus(code int) (s api.State, ok bool) {
	for _, s := range []api.State{api.StatePrimary, api.StateStandby, api.StateDown, api.StateUnknown} {
		if s.HTTPStatus() == code {
			return s, true
		}
	}
	return "", false
}

const checkLong = `Ask the local pgquorum for this node's verdict (GET <url>/state) and exit 0
when it matches --expect, for keepalived's vrrp_script / track_script.

The decision comes from the HTTP status alone (200 Primary, 202 Standby,
503 Down, 509 Unknown); the JSON body is only used to describe the verdict.

  --expect primary   the node is the primary with a majority of its site (200)
  --expect standby   the node is a standby (202)
  --expect up        the local database is up: any state except Down (503),
                     so a Primary, a Standby and an Unknown primary all match

Exit codes:
  0  the verdict matches (one line on stdout)
  1  pgquorum answered and the verdict does not match, Down included
     (one line on stderr)
  2  no verdict: pgquorum unreachable, --timeout passed, an answer that is not
     HTTP or a status /state never answers; also a usage error such as an
     invalid --expect. keepalived treats every non-zero exit as a failure.

--timeout bounds the whole call: connect, request and reading the answer.`

func newCheckCmd(stdout io.Writer) *cobra.Command {
	var expect string
	var target localFlags
	cmd := &cobra.Command{
		Use:   "check --expect primary|standby|up",
		Short: "Exit 0 when the local node's verdict matches (for keepalived)",
		Long:  checkLong,
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&expect, "expect", "", "primary, standby or up (required)")
	target.register(cmd.Flags(), defaultCheckTimeout)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		want, err := parseExpectation(expect)
		if err != nil {
			return usageErr(err)
		}
		t, err := target.target(cmd.Flags().Changed("url"))
		if err != nil {
			return usageErr(err)
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), t.timeout)
		defer cancel()
		return check(ctx, t, want, stdout)
	}
	return cmd
}

// check asks t's /state once and turns the answer into the command's exit
// code.
func check(ctx context.Context, t target, want expectation, stdout io.Writer) error {
	where := t.base.JoinPath(api.PathState).String()
	a, err := askState(ctx, t)
	if err != nil {
		return &exitError{code: exitUnreachable, err: fmt.Errorf("unreachable: %w", err)}
	}
	if !want.matches(a.state) {
		return failedErr(fmt.Errorf("not %s: %s", want, a.describe(where)))
	}
	fmt.Fprintf(stdout, "%s: %s\n", want, a.describe(where))
	return nil
}

// stateAnswer is one answer of /state: the state its status code means and,
// when the body decodes, the body, which only serves to describe it (a body
// over client.MaxStateBody is simply not described).
type stateAnswer struct {
	state   api.State
	body    *api.StateBody
	bodyErr error
}

// askState GETs t's /state; ctx bounds the whole exchange, body included.
// Only a missing or foreign status is an error: a body that does not decode
// leaves the status-based verdict as it is.
func askState(ctx context.Context, t target) (stateAnswer, error) {
	n := t.node()
	a, err := n.State(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return stateAnswer{}, fmt.Errorf("timed out: %w", err)
		}
		return stateAnswer{}, err // *url.Error already names the method and URL
	}
	state, ok := stateOfStatus(a.Status)
	if !ok {
		return stateAnswer{}, fmt.Errorf("GET %s answered %d, which is no pgquorum state", n.URL(api.PathState), a.Status)
	}
	return stateAnswer{state: state, body: a.Body, bodyErr: a.BodyErr}, nil
}

// describe says who answered what, on one line, e.g.
// "node1 is Primary (3 votes, 2 needed)" or "node2 is Standby".
func (a stateAnswer) describe(target string) string {
	if a.body == nil {
		return printableLine(fmt.Sprintf("%s answers %s (%v)", target, a.state, a.bodyErr))
	}
	who := a.body.Node
	if who == "" {
		who = target
	}
	s := fmt.Sprintf("%s is %s", who, a.state)
	if a.state == api.StatePrimary || a.state == api.StateUnknown {
		s += fmt.Sprintf(" (%d votes, %d needed)", a.body.Votes, a.body.Needed)
	}
	if a.body.State != "" && a.body.State != a.state {
		s += fmt.Sprintf(" (body says %s)", a.body.State)
	}
	if a.body.Reason != "" {
		s += ": " + a.body.Reason
	}
	return printableLine(s)
}

// maxLine bounds the printed line: keepalived and syslog lines are short.
const maxLine = 300

// printableLine keeps the promise of one short printed line whatever the
// body holds: control characters (newlines among them) become spaces, and
// the line is cut at maxLine characters.
func printableLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > maxLine {
		s = string(r[:maxLine]) + "…"
	}
	return s
}

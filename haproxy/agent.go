package haproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
)

// What HAProxy does with an agent reply (configuration.txt of HAProxy 2.6,
// "agent-check", and checked against haproxy 2.6.12):
//   - The reply is one line of words separated by blanks or commas. "up" lets
//     the server be UP only if its regular health check passes too; "down"
//     marks it DOWN whatever that check says. So on each listener a server
//     is UP only when the http check (200 or 202) and the agent agree.
//   - "ready", "drain" and "maint" set the administrative state: DRAIN takes
//     no new connections but keeps the existing ones; MAINT takes none and
//     pauses health checks, but agent checks go on, so a later "ready" brings
//     the server back, UP or DOWN as its http check says.
//   - "N%" sets the weight relative to the configured one ("weight 100").
//   - What a reply does not say is left as it was, and only the agent undoes
//     what the agent did. Every reply therefore states all three: admin
//     state, weight and health.
//   - '#' does not end a word, so "down#why" is one unknown word and
//     not "down": with no health word left, HAProxy reports an agent error
//     and leaves the server UP. A description must come last, after a blank
//     and '#', and may hold blanks.
//   - A failed connection to the agent is no news, not a failure: the http
//     check alone then decides.

// Mode is the operator's administrative override of a node: api.AgentMode,
// named here too because this package speaks it to HAProxy.
type Mode = api.AgentMode

// The modes, as api names them.
const (
	ModeReady = api.AgentReady
	ModeDrain = api.AgentDrain
	ModeMaint = api.AgentMaint
)

// Override is what an operator set: a mode and a weight percentage.
type Override struct {
	Mode   Mode
	Weight int // percent of the rendered "weight 100", 1 to 256
}

// Validate reports an override HAProxy could not take.
func (o Override) Validate() error {
	switch o.Mode {
	case ModeReady, ModeDrain, ModeMaint:
	default:
		return fmt.Errorf("mode: want ready, drain or maint, got %q", o.Mode)
	}
	if o.Weight < 1 || o.Weight > 256 {
		return fmt.Errorf("weight: want a percentage from 1 to 256, got %d", o.Weight)
	}
	return nil
}

// maxReason bounds the description of a reply; HAProxy shows it on the stats
// page and in its logs.
const maxReason = 120

// Reply is the agent line for a listener of role (RoleRW, RoleRO, or "" when
// HAProxy sent no agent-send line) given the node's current snapshot. It fails
// closed: no snapshot, Down and Unknown are "down" everywhere.
func Reply(role string, snap *consensus.Snapshot, ov Override) string {
	up, why := health(role, snap)
	word := "down"
	if up {
		word = "up"
	}
	why = strings.Join(strings.Fields(why), " ") // no line breaks: one line is one reply
	if len(why) > maxReason {
		why = strings.ToValidUTF8(why[:maxReason], "")
	}
	return fmt.Sprintf("%s %d%% %s #%s\n", ov.Mode, ov.Weight, word, why)
}

// health says whether the node may serve role. A Primary serves writes only;
// a Standby serves reads only while it streams from its upstream, since one
// that lost it (its primary died, it has not followed the new one yet)
// serves ever older data.
func health(role string, snap *consensus.Snapshot) (bool, string) {
	if snap == nil {
		return false, "no verdict"
	}
	v := snap.Verdict
	switch {
	case v.State == api.StateDown || v.State == api.StateUnknown:
		return false, fmt.Sprintf("%s: %s", v.State, v.Reason)
	case role == RoleRW && v.State != api.StatePrimary:
		return false, fmt.Sprintf("%s, not writable", v.State)
	case role == RoleRW:
		return true, fmt.Sprintf("Primary with %d votes, %d needed", v.Votes, v.Needed)
	case role == RoleRO && v.State != api.StateStandby:
		return false, fmt.Sprintf("%s, not a standby", v.State)
	case role == RoleRO && !snap.Facts.WAL.Streaming():
		return false, fmt.Sprintf("Standby not streaming (wal receiver %q)", snap.Facts.WAL.ReceiverStatus)
	case v.State == api.StatePrimary || v.State == api.StateStandby:
		return true, string(v.State) // RoleRO streaming, or no role: the http check tells the roles apart
	default:
		return false, fmt.Sprintf("unexpected state %q", v.State)
	}
}

// VerdictSource is what the agent answers from; *consensus.Checker is one.
type VerdictSource interface {
	Snapshot(ctx context.Context) *consensus.Snapshot
}

// AgentOptions configure an Agent. Zero values take the defaults below.
type AgentOptions struct {
	Logger *slog.Logger
	// SendWait bounds the wait for HAProxy's agent-send line, which comes
	// with the connection; without agent-send each check costs this much.
	SendWait time.Duration // default 100ms
	// ConnTimeout bounds a whole exchange: the verdict is cached, so only a
	// cache miss (probe + peer poll) comes near it.
	ConnTimeout time.Duration // default 3s
	MaxConns    int           // concurrent exchanges; more are refused. Default 64
}

// Agent answers HAProxy's agent-check on a TCP port.
type Agent struct {
	src  VerdictSource
	opts AgentOptions
	log  *slog.Logger

	mu sync.Mutex
	ov Override
}

// NewAgent returns an Agent in ready mode at weight 100%.
func NewAgent(opts AgentOptions, src VerdictSource) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SendWait <= 0 {
		opts.SendWait = 100 * time.Millisecond
	}
	if opts.ConnTimeout <= 0 {
		opts.ConnTimeout = 3 * time.Second
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 64
	}
	return &Agent{src: src, opts: opts, log: opts.Logger, ov: Override{Mode: ModeReady, Weight: 100}}
}

// Override returns the operator's current override.
func (a *Agent) Override() Override {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ov
}

// SetOverride changes the override; HAProxy sees it at its next agent check.
func (a *Agent) SetOverride(ov Override) error {
	if err := ov.Validate(); err != nil {
		return err
	}
	a.mu.Lock()
	prev := a.ov
	a.ov = ov
	a.mu.Unlock()
	if prev != ov {
		a.log.Info("agent override changed", "from", prev.Mode, "to", ov.Mode, "weight", ov.Weight)
	}
	return nil
}

// Serve answers agent checks on ln until ctx ends, then closes ln and waits
// for the exchanges under way.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, a.opts.MaxConns)
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case errors.Is(err, net.ErrClosed):
			return fmt.Errorf("accept agent connection: %w", err)
		case err != nil:
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, rather than stop the daemon.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			a.log.Warn("agent: accept failed, retrying", "error", err, "in", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		select {
		case slots <- struct{}{}:
		default:
			// Refusing is safe: HAProxy takes a failed agent check as no news.
			a.log.Warn("agent: too many connections, refusing one", "remote", conn.RemoteAddr().String())
			conn.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			a.answer(ctx, conn)
		}()
	}
}

// answer reads the optional agent-send line, writes one reply and closes.
func (a *Agent) answer(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, a.opts.ConnTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	role := readRole(conn, a.opts.SendWait)
	reply := Reply(role, a.src.Snapshot(ctx), a.Override())
	if _, err := io.WriteString(conn, reply); err != nil {
		a.log.Debug("agent: write reply", "remote", conn.RemoteAddr().String(), "error", err)
		return
	}
	a.log.Debug("agent: replied", "remote", conn.RemoteAddr().String(), "role", role, "reply", strings.TrimSpace(reply))
}

// maxSendLine bounds what is read of the agent-send line: ours are "rw\n"
// and "ro\n", and a client may not make us buffer more.
const maxSendLine = 64

// readRole returns RoleRW or RoleRO if the peer sends that line within wait,
// and "" otherwise (no agent-send, another string, or too long). One byte
// more than maxSendLine is read, so that a longer line is known as such
// rather than judged by its first bytes.
func readRole(conn net.Conn, wait time.Duration) string {
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	line, err := bufio.NewReaderSize(io.LimitReader(conn, maxSendLine+1), maxSendLine+1).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) && !isTimeout(err) {
		return ""
	}
	if len(line) > maxSendLine {
		return ""
	}
	switch r := strings.ToLower(strings.TrimSpace(line)); r {
	case RoleRW, RoleRO:
		return r
	default:
		return ""
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

package auth

import (
	"log/slog"
	"sync"
)

// LogOnce logs the failures of each key (a peer, a remote host) once, until
// the key passes again, and the pass that ends them: a peer without
// credentials is refused at every refresh, and one line says all there is
// to say. The zero value discards; set Log.
type LogOnce struct {
	Log *slog.Logger

	mu     sync.Mutex
	failed map[string]bool
}

// maxLogKeys bounds the keys remembered; past it, failures of new keys are
// logged every time rather than remembered.
const maxLogKeys = 1024

// Failed logs msg at warning level unless key has failed since it last
// passed.
func (l *LogOnce) Failed(key, msg string, args ...any) {
	l.mu.Lock()
	if l.failed == nil {
		l.failed = map[string]bool{}
	}
	first := !l.failed[key]
	if first && len(l.failed) < maxLogKeys {
		l.failed[key] = true
	}
	l.mu.Unlock()
	if first && l.Log != nil {
		l.Log.Warn(msg, args...) //nolint:sloglint // the caller's message, a constant at every call
	}
}

// Passed logs msg at info level if key had failed.
func (l *LogOnce) Passed(key, msg string, args ...any) {
	l.mu.Lock()
	was := l.failed[key]
	delete(l.failed, key)
	l.mu.Unlock()
	if was && l.Log != nil {
		l.Log.Info(msg, args...) //nolint:sloglint // the caller's message, a constant at every call
	}
}

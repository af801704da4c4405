package api

import (
	"errors"
	"testing"
)

func TestErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "one line stays", err: errors.New("connect: connection refused"), want: "connect: connection refused"},
		{name: "pgx's line per address", err: errors.New("failed to connect:\n\thost=a: refused\n\thost=b: refused"),
			want: "failed to connect: host=a: refused host=b: refused"},
		{name: "runs of blanks", err: errors.New("  a \r\n b  "), want: "a b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorText(tt.err); got != tt.want {
				t.Errorf("ErrorText = %q, want %q", got, tt.want)
			}
		})
	}
}

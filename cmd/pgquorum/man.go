package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCmd writes one man page per command into a directory: the package
// build runs it (make deb), so the pages always match the flags. Hidden:
// operators read the pages, they do not make them.
func newManCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages of every command into DIR",
		Args:   cobra.ExactArgs(1),
		Hidden: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return failedErr(err)
			}
			// The date in the header is SOURCE_DATE_EPOCH's when set (make does).
			hdr := &doc.GenManHeader{Title: "PGQUORUM", Section: "1", Source: "pgquorum " + root.Version, Manual: "pgquorum manual"}
			root.DisableAutoGenTag = true
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return failedErr(fmt.Errorf("man pages: %w", err))
			}
			return nil
		},
	}
}

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func (c *cli) completionCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "a shell completion script",
		Long: "Prints the completion script for a shell. Besides commands and flags it\n" +
			"completes lab names, sandbox ids and node names, asking labd.",
		Example: "  source <(labctl completion bash)                                  # this shell\n" +
			"  labctl completion bash > /etc/bash_completion.d/labctl            # every bash\n" +
			"  labctl completion zsh > \"${fpath[1]}/_labctl\"\n" +
			"  labctl completion fish > ~/.config/fish/completions/labctl.fish",
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef(cmd, "want one of bash, zsh or fish")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(c.stdout, true)
			case "zsh":
				return root.GenZshCompletion(c.stdout)
			case "fish":
				return root.GenFishCompletion(c.stdout, true)
			}
			return usagef(cmd, "unknown shell %q (want bash, zsh or fish)", args[0])
		},
	}
}

// completionTimeout bounds what a TAB waits for labd.
const completionTimeout = 2 * time.Second

// completeSandboxes offers sandbox ids as a command's first argument.
func (c *cli) completeSandboxes(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) != 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	sbs, err := c.listSandboxes(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var ids []cobra.Completion
	for _, sb := range sbs {
		ids = append(ids, cobra.CompletionWithDesc(sandboxID(sb), fmt.Sprintf("%s, %s", lastSegment(sb.GetLab()), stateName(sb.GetState()))))
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}

// completeSandboxNodes offers sandbox ids, then the sandbox's nodes.
func (c *cli) completeSandboxNodes(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	pos := positionals(args)
	switch len(pos) {
	case 0:
		return c.completeSandboxes(cmd, nil, toComplete)
	case 1:
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		sb, err := c.getSandbox(ctx, pos[0])
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var nodes []cobra.Completion
		for _, n := range sb.GetNodes() {
			nodes = append(nodes, n.GetName())
		}
		return nodes, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveDefault
}

// positionals drops flags from args, which exec and shell get unparsed.
// A flag's separate value may be counted as a positional; completion is
// a help, not a parser.
func positionals(args []string) []string {
	var pos []string
	for _, a := range args {
		if a == "--" {
			break
		}
		if len(a) > 1 && a[0] == '-' {
			continue
		}
		pos = append(pos, a)
	}
	return pos
}

// completeLabs offers lab ids as a command's first argument.
func (c *cli) completeLabs(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) != 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	labs, err := c.listLabs(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var ids []cobra.Completion
	for _, l := range labs {
		ids = append(ids, cobra.CompletionWithDesc(labID(l), l.GetTitle()))
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}

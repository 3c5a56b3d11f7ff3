// Command controlplane starts and stops a local Kubernetes control plane
// (see package testenv) that outlives the command, for `make
// controlplane-up` and `make controlplane-down`:
//
//	go run ./internal/testenv/cmd/controlplane up   [--dir .controlplane] [--tools DIR]
//	go run ./internal/testenv/cmd/controlplane down [--dir .controlplane]
//
// up writes an admin kubeconfig to DIR/kubeconfig and the component logs to
// DIR/logs; down stops the recorded processes and removes DIR.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/charter-sh/charter/internal/testenv"
)

const usage = `usage: controlplane up|down [--dir DIR] [--tools DIR]

  up    start etcd, kube-apiserver, kube-controller-manager, kube-scheduler
        and kwok in the background; write DIR/kubeconfig
  down  stop the processes recorded in DIR and remove DIR
`

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "controlplane: %v\n%s", err, usage)
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: missing command", errUsage)
	}
	command := args[0]
	flags := flag.NewFlagSet("controlplane "+command, flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	dir := flags.String("dir", ".controlplane", "folder for certificates, data, logs and the kubeconfig")
	tools := flags.String("tools", "", "tools cache folder (default $CHARTER_TOOLS or ~/.cache/charter/tools)")
	if err := flags.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, flags.Arg(0))
	}
	switch command {
	case "up":
		return up(ctx, *dir, *tools, stdout)
	case "down":
		return down(ctx, *dir, stdout)
	default:
		return fmt.Errorf("%w: unknown command %q", errUsage, command)
	}
}

func up(ctx context.Context, dir, tools string, stdout io.Writer) error {
	begin := time.Now()
	env, err := testenv.Start(ctx, testenv.Options{Dir: dir, Tools: tools, Detach: true})
	if err != nil {
		return err
	}
	kubeconfig := env.Kubeconfig
	if rel, err := filepath.Rel(mustGetwd(), kubeconfig); err == nil && filepath.IsLocal(rel) {
		kubeconfig = rel
	}
	fmt.Fprintf(stdout, "control plane up in %s (node %s, logs in %s)\n",
		time.Since(begin).Round(100*time.Millisecond), testenv.FakeNodeName, filepath.Join(env.Dir, "logs"))
	fmt.Fprintf(stdout, "use it with:\n  export KUBECONFIG=%s\nstop it with:\n  make controlplane-down\n", kubeconfig)
	return nil
}

func down(ctx context.Context, dir string, stdout io.Writer) error {
	running, err := testenv.Running(dir)
	if err != nil {
		return err
	}
	if err := testenv.Shutdown(ctx, dir); err != nil {
		return err
	}
	if len(running) == 0 {
		fmt.Fprintf(stdout, "no control plane running in %s\n", dir)
		return nil
	}
	fmt.Fprintf(stdout, "control plane in %s stopped and removed\n", dir)
	return nil
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	return wd
}

// Command gateway runs Rampart, the inline API security gateway.
//
//	gateway -config rampart.yaml
//	gateway -check-config -config rampart.yaml
//	gateway replay [-config CURRENT.yaml] -candidate CANDIDATE.yaml [flags] FILE...
//
// This package is the composition root: the only place that knows every
// package. config.go puts the packages' config structs together into the
// YAML file, detections.go lists the detections, serve.go builds the store,
// the gateway and the admin listener and runs them, reload.go swaps the
// policy on SIGHUP or a file change.
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
	"runtime/debug"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr, hup); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "gateway:", err)
		}
		code := 1
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			code = ec.ExitCode() // gateway replay: 2 for a broken run
		}
		os.Exit(code)
	}
}

var errUsage = errors.New("usage")

// flags are the command line.
type flags struct {
	path    string
	check   bool
	watch   time.Duration
	version bool
}

func parseFlags(args []string, getenv func(string) (string, bool), stderr io.Writer) (flags, error) {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defPath, _ := getenv("GATEWAY_CONFIG")
	var f flags
	fs.StringVar(&f.path, "config", defPath, "YAML config file (env GATEWAY_CONFIG); empty: defaults and environment only")
	fs.BoolVar(&f.check, "check-config", false, "check the config as the gateway would at start (every error at once) and exit")
	fs.DurationVar(&f.watch, "watch", 2*time.Second, "reload the config file when it changes, checking this often (0: only on SIGHUP)")
	fs.BoolVar(&f.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return f, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway: unexpected arguments %q\n", fs.Args())
		return f, errUsage
	}
	return f, nil
}

// run loads the configuration and runs the gateway until ctx ends. reload
// delivers SIGHUP.
func run(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer, reload <-chan os.Signal) error {
	if len(args) > 0 && args[0] == "replay" {
		return runReplay(ctx, args[1:], getenv, stdout, stderr)
	}
	fl, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	if fl.version {
		fmt.Fprintln(stdout, versionString())
		return nil
	}
	cfg, err := load(fl.path, getenv)
	if err != nil {
		return err
	}
	if fl.check {
		for _, w := range cfg.warnings {
			fmt.Fprintf(stdout, "%s: warning: %s\n", displayPath(cfg.path), w)
		}
		fmt.Fprintf(stdout, "%s: OK\n", displayPath(cfg.path))
		return nil
	}
	srv, err := newServer(cfg, getenv, stdout)
	if err != nil {
		return err
	}
	defer srv.close()
	return srv.run(ctx, reloader{path: fl.path, getenv: getenv, srv: srv}, reload, fl.watch)
}

func displayPath(p string) string {
	if p == "" {
		return "(defaults)"
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

func versionString() string {
	if version != "" {
		return "rampart " + version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "rampart " + s.Value[:12]
			}
		}
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return "rampart " + bi.Main.Version
		}
	}
	return "rampart dev"
}

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version string

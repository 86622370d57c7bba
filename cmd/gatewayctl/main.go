// Command gatewayctl is the operator's CLI over the gateway's admin API:
// bans, security events, a summary, a client's counters and a replica's
// status.
//
//	export GATEWAY_ADMIN_TOKEN=…
//	gatewayctl bans list
//	gatewayctl bans add 203.0.113.7 -for 1h -reason "credential stuffing"
//	gatewayctl events tail -f
//
// The exit codes are an interface for scripts; `gatewayctl help` lists them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes. Scripts rely on them and usageText documents them: changing
// one is a breaking change.
const (
	exitOK       = 0
	exitFailure  = 1 // talking to the gateway failed, or it answered 5xx
	exitUsage    = 2 // bad flags or arguments, or a 400 from the API
	exitNotFound = 3 // 404
	exitAuth     = 4 // 401 or 403
)

const (
	defaultURL     = "http://127.0.0.1:9090"
	defaultTimeout = 5 * time.Second
	envURL         = "GATEWAY_ADMIN_URL"
	envToken       = "GATEWAY_ADMIN_TOKEN"
)

// run is main without the process: it runs the command in args and returns
// the exit code. getenv is os.LookupEnv in main; tests pass a map, so they
// never touch the real environment.
func run(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	c := &cli{getenv: getenv, stdout: stdout, stderr: stderr, poll: time.Second}
	return c.run(ctx, args)
}

// cli holds what a run needs besides its arguments.
type cli struct {
	getenv         func(string) (string, bool)
	stdout, stderr io.Writer
	// poll is how often `events tail -f` asks for new events; tests shorten it.
	poll time.Duration
}

func (c *cli) run(ctx context.Context, args []string) int {
	err := c.exec(ctx, args)
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.msg != "" {
			fmt.Fprintf(c.stderr, "gatewayctl: %s\n", ue.msg)
		}
		if ue.cmd != nil {
			fmt.Fprintf(c.stderr, "usage: gatewayctl %s\n", ue.cmd.synopsis())
		}
		if ue.msg != "" || ue.cmd != nil {
			fmt.Fprintln(c.stderr, "Run 'gatewayctl help' for usage.")
		}
		return exitUsage
	}
	fmt.Fprintf(c.stderr, "gatewayctl: %s\n", err)
	return exitCode(err)
}

// exitCode maps an error to the documented exit code.
func exitCode(err error) int {
	var ue *usageError
	var ae *apiError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ae):
		switch ae.status {
		case http.StatusBadRequest:
			return exitUsage // the gateway refused an argument we passed on
		case http.StatusUnauthorized, http.StatusForbidden:
			return exitAuth
		case http.StatusNotFound:
			return exitNotFound
		}
	}
	return exitFailure
}

// usageError is a mistake in the command line, found before any request.
// An empty msg means the usage text was already printed.
type usageError struct {
	msg string
	cmd *command // the command whose synopsis to print, or nil
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd *command, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), cmd: cmd}
}

// globals are the flags every command accepts, before or after its name.
type globals struct {
	url     string
	token   secret
	output  string
	timeout time.Duration
}

// register adds the global flags to fs with their current values as
// defaults, so that defining them again on a command's flag set keeps what
// was parsed before the command name.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "url", g.url, "admin API base `URL` (env "+envURL+")")
	fs.Var(&g.token, "token", "admin bearer `token` (env "+envToken+", preferred: flags show in ps)")
	fs.StringVar(&g.output, "o", g.output, "output `format`: table or json")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "per-request `duration` limit")
}

// secret is a flag.Value that never prints its value, so -h cannot show the
// token that the environment provided.
type secret struct {
	value   string
	fromArg bool
}

func (s *secret) String() string { return "" }

func (s *secret) Set(v string) error {
	s.value, s.fromArg = strings.TrimSpace(v), true
	return nil
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by run
	fs.Usage = func() {}
	return fs
}

func (c *cli) exec(ctx context.Context, args []string) error {
	g := globals{url: defaultURL, output: "table", timeout: defaultTimeout}
	if v, ok := c.getenv(envURL); ok && strings.TrimSpace(v) != "" {
		g.url = strings.TrimSpace(v)
	}
	if v, ok := c.getenv(envToken); ok {
		g.token.value = strings.TrimSpace(v)
	}
	fs := newFlagSet("gatewayctl")
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(c.stdout, usageText)
			return nil
		}
		return usagef(nil, "%v", err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(c.stderr, usageText)
		return &usageError{}
	}
	if rest[0] == "help" {
		return c.help(rest[1:])
	}
	cmd, rest, err := lookup(rest)
	if err != nil {
		return err
	}
	cfs := newFlagSet("gatewayctl " + cmd.name)
	action := cmd.setup(cfs)
	g.register(cfs)
	pos, err := parseArgs(cfs, rest)
	if errors.Is(err, flag.ErrHelp) {
		c.commandHelp(c.stdout, cmd)
		return nil
	}
	if err != nil {
		return usagef(cmd, "%v", err)
	}
	if len(pos) != len(cmd.args) {
		if len(cmd.args) == 0 {
			return usagef(cmd, "%s: unexpected argument %q", cmd.name, pos[0])
		}
		return usagef(cmd, "%s: want %s, got %d arguments", cmd.name, strings.Join(cmd.args, " "), len(pos))
	}
	a, err := c.newApp(&g)
	if err != nil {
		return usagef(nil, "%v", err)
	}
	return action(ctx, a, pos)
}

// parseArgs parses flags anywhere among the positional arguments, so both
// "bans add -for 1h 203.0.113.7" and "bans add 203.0.113.7 -for 1h" work;
// "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func (c *cli) help(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stdout, usageText)
		return nil
	}
	cmd, rest, err := lookup(args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef(nil, "help: unexpected argument %q", rest[0])
	}
	c.commandHelp(c.stdout, cmd)
	return nil
}

func (c *cli) commandHelp(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "Usage: gatewayctl %s\n\n%s\n\nFlags:\n", cmd.synopsis(), cmd.help)
	fs := newFlagSet(cmd.name)
	cmd.setup(fs)
	(&globals{url: defaultURL, output: "table", timeout: defaultTimeout}).register(fs)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// app is a parsed command line: where the API is, how to authenticate and
// how to print.
type app struct {
	base    *url.URL
	token   string
	json    bool
	timeout time.Duration
	hc      *http.Client
	stdout  io.Writer
	stderr  io.Writer
	poll    time.Duration
}

func (c *cli) newApp(g *globals) (*app, error) {
	base, err := parseBaseURL(g.url)
	if err != nil {
		return nil, err
	}
	if g.output != "table" && g.output != "json" {
		return nil, fmt.Errorf("-o %q: want table or json", g.output)
	}
	if g.timeout <= 0 {
		return nil, fmt.Errorf("-timeout %v: want a positive duration such as 5s", g.timeout)
	}
	if g.token.fromArg {
		fmt.Fprintf(c.stderr, "gatewayctl: warning: -token is visible to other users in the process list; prefer %s\n", envToken)
	}
	return &app{
		base: base, token: g.token.value, json: g.output == "json", timeout: g.timeout,
		hc: &http.Client{
			// The admin API never redirects: following one would send
			// requests (and, on the same host, the token) somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		stdout: c.stdout, stderr: c.stderr, poll: c.poll,
	}, nil
}

// parseBaseURL accepts an http(s) URL, or host:port as the gateway's
// admin.listen setting is written.
func parseBaseURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("-url: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("-url %q: want an http:// or https:// URL such as %s", u.Redacted(), defaultURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("-url %q: want no query or fragment", u.Redacted())
	}
	return u, nil
}

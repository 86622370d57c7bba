package testutil

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// childEnv selects what the test binary does when a test starts it as a
// child process.
const childEnv = "TESTUTIL_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		child(mode)
		return
	}
	code := m.Run()
	RemoveBuilds()
	os.Exit(code)
}

// child is the test binary running as a test's child process.
func child(mode string) {
	switch mode {
	case "print":
		fmt.Println("out line 1")
		fmt.Fprintln(os.Stderr, "err line 2")
		fmt.Println("out line 3")
		wd, _ := os.Getwd()
		fmt.Printf("CWD=%s\nHOME=%s\nFOO=%s\nLEAK=%s\n", wd, os.Getenv("HOME"), os.Getenv("FOO"), os.Getenv("TESTUTIL_LEAK"))
		os.Exit(3)
	case "tick":
		for i := 0; ; i++ {
			fmt.Println("tick", i)
			time.Sleep(5 * time.Millisecond)
		}
	case "sleep":
		// Silent: a write to the dead parent's pipe would end it by SIGPIPE.
		select {}
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	case "term":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ready")
		<-c
		fmt.Println("bye")
		os.Exit(0)
	case "http":
		http.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
		time.Sleep(150 * time.Millisecond) // not ready at once: the waiter must retry
		fmt.Println(http.ListenAndServe(os.Getenv("ADDR"), nil))
		os.Exit(1)
	case "parent":
		// Starts a grandchild through start (Pdeathsig) and prints its pid.
		p, err := start(Spec{Binary: self(), Env: []string{childEnv + "=sleep"}, Dir: os.Getenv("DIR"), Name: "grandchild"})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("grandchild", p.Pid())
		select {}
	default:
		fmt.Fprintln(os.Stderr, "unknown child mode", mode)
		os.Exit(2)
	}
}

func self() string {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return exe
}

func startChild(t *testing.T, mode string, env ...string) *Proc {
	t.Helper()
	// Under -race the child would otherwise sleep a second before exiting.
	env = append([]string{childEnv + "=" + mode, "GORACE=atexit_sleep_ms=0"}, env...)
	return Start(t, Spec{Name: mode, Binary: self(), Env: env})
}

func TestStartOutputExitAndEnvironment(t *testing.T) {
	t.Setenv("TESTUTIL_LEAK", "yes")
	p := startChild(t, "print", "FOO=bar")
	err := p.Wait(10 * time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || p.ExitCode() != 3 {
		t.Fatalf("Wait = %v, ExitCode = %d, want exit status 3", err, p.ExitCode())
	}
	if p.Running() {
		t.Error("Running after exit")
	}
	out := p.Output()
	wd, _ := os.Getwd()
	for _, want := range []string{"CWD=" + wd + "\n", "out line 1\nerr line 2\nout line 3\n", "FOO=bar\n", "LEAK=\n", "HOME=" + filepath.Dir(p.LogPath()) + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := p.Tail(2); got != "FOO=bar\nLEAK=" {
		t.Errorf("Tail(2) = %q", got)
	}
}

func TestStopGracefulThenForced(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		mode       string
		wantSignal bool // killed by the escalation, not exited on its own
	}{
		{"exits on SIGTERM", "term", false},
		{"ignores SIGTERM and is killed after the grace", "ignore-term", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startChild(t, tc.mode)
			Eventually(t, 10*time.Second, 5*time.Millisecond, func() bool { return strings.Contains(p.Output(), "ready") }, "the child to be ready")
			start := time.Now()
			p.Stop(syscall.SIGTERM, 300*time.Millisecond)
			took := time.Since(start)
			if p.Running() {
				t.Fatal("still running after Stop")
			}
			killed := p.Cmd().ProcessState.Sys().(syscall.WaitStatus).Signaled()
			if killed != tc.wantSignal {
				t.Errorf("killed by a signal = %v, want %v (%s)", killed, tc.wantSignal, p.Cmd().ProcessState)
			}
			if tc.wantSignal && took < 300*time.Millisecond {
				t.Errorf("killed after %v, before the grace", took)
			}
			if !tc.wantSignal && !strings.Contains(p.Output(), "bye") {
				t.Errorf("no graceful exit: %q", p.Output())
			}
			p.Stop(syscall.SIGTERM, time.Second) // idempotent
		})
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	p := startChild(t, "tick")
	lines := func() int { return strings.Count(p.Output(), "\n") }
	Eventually(t, 10*time.Second, 5*time.Millisecond, func() bool { return lines() > 3 }, "ticks")
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let a write in flight land
	paused := lines()
	time.Sleep(150 * time.Millisecond) // 30 ticks' time: none may appear
	if got := lines(); got != paused {
		t.Errorf("%d lines written while paused", got-paused)
	}
	if !p.Running() {
		t.Fatal("a paused process counts as exited")
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, 5*time.Millisecond, func() bool { return lines() > paused+3 }, "ticks after Resume")
	// Stop resumes a paused process so that it can act on the signal.
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	p.Stop(syscall.SIGTERM, 5*time.Second)
	if ws := p.Cmd().ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("a paused process stopped with SIGTERM ended with %s", p.Cmd().ProcessState)
	}
}

func TestCleanupStopsTheProcess(t *testing.T) {
	var p *Proc
	t.Run("inner", func(t *testing.T) { p = startChild(t, "tick") })
	if p.Running() {
		t.Fatal("process still running after its test's cleanup")
	}
}

func TestLaunchOutlivesTheSubtest(t *testing.T) {
	dir := t.TempDir()
	var p *Proc
	t.Run("inner", func(t *testing.T) {
		var err error
		p, err = Launch(Spec{Name: "tick", Binary: self(), Env: []string{childEnv + "=tick"}, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
	})
	if !p.Running() {
		t.Fatal("a launched process was stopped with its subtest")
	}
	Eventually(t, 10*time.Second, 5*time.Millisecond, func() bool { return strings.Contains(p.Output(), "tick 1\n") }, "ticks")
	p.Stop(syscall.SIGTERM, 5*time.Second)
	if p.Running() || p.LogPath() != filepath.Join(dir, "tick.log") {
		t.Errorf("running %v, log %s: %q", p.Running(), p.LogPath(), p.Tail(1))
	}
	if _, err := Launch(Spec{Binary: self()}); err == nil {
		t.Error("Launch without a place for the log succeeded")
	}
}

// A child outlives neither a crashed parent: the grandchild started with
// Pdeathsig dies when its parent is killed.
func TestPdeathsig(t *testing.T) {
	t.Parallel()
	parent := startChild(t, "parent", "DIR="+t.TempDir())
	var pid int
	Eventually(t, 10*time.Second, 5*time.Millisecond, func() bool {
		for line := range strings.Lines(parent.Output()) {
			if rest, ok := strings.CutPrefix(line, "grandchild "); ok {
				pid, _ = strconv.Atoi(strings.TrimSpace(rest))
			}
		}
		return pid > 0
	}, "the grandchild's pid")
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) }) // should it survive
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("grandchild %d not running: %v", pid, err)
	}
	// Only the parent, not its group: the grandchild has a group of its own.
	if err := parent.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, 5*time.Millisecond, func() bool {
		// The grandchild is reparented and reaped by init (or a
		// subreaper); until then it is a zombie, which counts as gone.
		state, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err != nil || strings.Contains(string(state), ") Z ")
	}, "grandchild %d to die with its parent", pid)
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 100 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	addr := FreeAddr(t)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("FreeAddr %s not bindable: %v", addr, err)
	}
	l.Close()
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Errorf("FreeAddr = %s, want loopback", addr)
	}
}

func TestWaitTCPAndHTTP(t *testing.T) {
	t.Parallel()
	addr := FreeAddr(t)
	startChild(t, "http", "ADDR="+addr)
	start := time.Now()
	WaitTCP(t, addr, 10*time.Second)
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("WaitTCP returned after %v, before the server listened", time.Since(start))
	}
	WaitHTTP(t, "http://"+addr+"/missing", time.Second)
	WaitHTTP(t, "http://"+addr+"/ok", time.Second, http.StatusNoContent)
	if err := HTTPStatus("http://"+addr+"/missing", http.StatusOK); err == nil {
		t.Error("HTTPStatus accepted a 404 when 200 was wanted")
	}
}

// fatalRecorder records Fatalf and ends the goroutine like testing.T does.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// fails runs f with a recorder and returns its Fatalf message ("" if none).
func fails(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msg
}

func TestEventually(t *testing.T) {
	t.Parallel()
	n := 0
	if msg := fails(t, func(tb testing.TB) {
		Eventually(tb, time.Second, time.Millisecond, func() bool { n++; return n == 5 }, "n to reach %d", 5)
	}); msg != "" || n != 5 {
		t.Errorf("met condition: msg %q, %d calls", msg, n)
	}
	start := time.Now()
	msg := fails(t, func(tb testing.TB) {
		Eventually(tb, 100*time.Millisecond, 10*time.Millisecond, func() bool { return false }, "the %s", "impossible")
	})
	if msg != "timed out after 100ms waiting for the impossible" {
		t.Errorf("message %q", msg)
	}
	if took := time.Since(start); took < 100*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %v", took)
	}
}

func TestEventuallyErrPermanent(t *testing.T) {
	t.Parallel()
	calls := 0
	start := time.Now()
	msg := fails(t, func(tb testing.TB) {
		EventuallyErr(tb, 10*time.Second, time.Millisecond, func() error {
			calls++
			if calls == 3 {
				return Permanent(errors.New("server exited"))
			}
			return errors.New("not yet")
		}, "the server")
	})
	if msg != "waiting for the server: server exited" || calls != 3 || time.Since(start) > 5*time.Second {
		t.Errorf("msg %q after %d calls, %v", msg, calls, time.Since(start))
	}
	err := Poll(50*time.Millisecond, 10*time.Millisecond, func() error { return errors.New("still down") })
	if err == nil || !strings.Contains(err.Error(), "still down") {
		t.Errorf("Poll = %v", err)
	}
}

func TestLogSinkTail(t *testing.T) {
	t.Parallel()
	s := &logSink{file: discard{}}
	for i := range 250 {
		fmt.Fprintf(s, "line %d\n", i)
	}
	if got := s.tail(2); got != "line 248\nline 249" {
		t.Errorf("tail(2) = %q", got)
	}
	if got := strings.Count(s.tail(-1), "\n") + 1; got != tailKeep {
		t.Errorf("kept %d lines, want %d", got, tailKeep)
	}
	// A long line, written in pieces, is cut; a partial line shows.
	_, _ = s.Write([]byte(strings.Repeat("x", 700)))
	_, _ = s.Write([]byte(strings.Repeat("y", 700) + "\nhalf"))
	lines := strings.Split(s.tail(2), "\n")
	if len(lines) != 2 || len(lines[0]) != tailLineMax+len("…") || !strings.HasSuffix(lines[0], "…") || lines[1] != "half" {
		t.Errorf("tail = %q", lines)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

func TestBuildBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	t.Parallel()
	root := t.TempDir()
	files := map[string]string{
		"go.mod":        "module example.test/hello\n\ngo 1.26\n",
		"hello/main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from a built binary\") }\n",
	}
	for name, body := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	dir := BuildBinaries(t, root, "./hello")
	first := time.Since(start)
	start = time.Now()
	if again := BuildBinaries(t, root, "./hello"); again != dir {
		t.Errorf("second build in %s, first in %s", again, dir)
	}
	t.Logf("first build %v, cached call %v", first.Round(time.Millisecond), time.Since(start))
	out, err := exec.Command(filepath.Join(dir, "hello")).CombinedOutput()
	if err != nil || string(out) != "hello from a built binary\n" {
		t.Errorf("built binary: %v %q", err, out)
	}
	if _, err := Build(root, "./missing"); err == nil {
		t.Error("building a missing package succeeded")
	}
}

func TestModuleRoot(t *testing.T) {
	t.Parallel()
	root := ModuleRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	if wd, _ := os.Getwd(); filepath.Join(root, "testutil") != wd {
		t.Errorf("ModuleRoot = %s from %s", root, wd)
	}
}

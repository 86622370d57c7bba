// Package testutil starts processes for tests, finds free loopback ports
// and waits on observable state instead of sleeping. It is the one place
// the repository's black-box, end-to-end and store tests get these from.
//
// It imports nothing from this repository, so it keeps compiling while the
// packages under test are being changed.
package testutil

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrRunning is returned by Proc.Wait when the process is still running at
// the timeout.
var ErrRunning = errors.New("testutil: process still running")

// Spec describes a process for Start.
type Spec struct {
	// Name labels the process in test logs and names its log file; the
	// binary's base name when empty.
	Name string
	// Binary is the program: a path, or a name looked up on PATH.
	Binary string
	// Args are the arguments after the program name.
	Args []string
	// Env is the child's whole environment apart from PATH (the test's)
	// and HOME (Dir, or the log's directory), which it may override:
	// nothing else of the test's environment leaks into the child.
	Env []string
	// Dir is the working directory. When empty the child runs where the
	// test runs (its package directory, as exec.Cmd does), so relative
	// paths in Args mean the same to both.
	Dir string
	// LogFile receives stdout and stderr, appended, so a process restarted
	// under the same name keeps one log. When empty: Dir/<Name>.log, or
	// <Name>.log in a new t.TempDir() when Dir is empty too.
	LogFile string
	// StopSignal is what cleanup sends first (SIGTERM when zero); the
	// process is killed if it is still running StopGrace later (5 s when
	// zero).
	StopSignal syscall.Signal
	StopGrace  time.Duration
	// TailLines is how many of the last log lines cleanup prints when the
	// test failed: 40 when zero, none when negative.
	TailLines int
}

// Proc is a child process started by Start. Its methods are safe for
// concurrent use. The child is in its own process group and gets SIGKILL
// when the test binary dies, so nothing outlives the test run.
type Proc struct {
	name    string
	logPath string
	spec    Spec
	cmd     *exec.Cmd
	sink    *logSink
	done    chan struct{}
	err     error // set before done is closed
}

// Start starts the process that spec describes and stops it at t.Cleanup
// (StopSignal, then SIGKILL after StopGrace). When the test has failed by
// then, cleanup prints the end of the process's log.
func Start(t testing.TB, spec Spec) *Proc {
	t.Helper()
	if spec.Dir == "" && spec.LogFile == "" {
		spec.LogFile = filepath.Join(t.TempDir(), cmp.Or(spec.Name, filepath.Base(spec.Binary))+".log")
	}
	p, err := start(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cleanup(t) })
	return p
}

// Launch starts the process that spec describes without tying it to a
// test: the caller stops it, and nothing prints its log. Use it for a
// process that must outlive the (sub)test that starts it, such as a
// replica restarted inside a subtest of the test that owns the cluster.
// Pdeathsig still kills it should the test binary die. Spec.Dir or
// Spec.LogFile must be set.
func Launch(spec Spec) (*Proc, error) {
	if spec.Dir == "" && spec.LogFile == "" {
		return nil, errors.New("testutil: Launch needs Spec.Dir or Spec.LogFile for the log")
	}
	return start(spec)
}

func start(spec Spec) (*Proc, error) {
	if spec.Binary == "" {
		return nil, errors.New("testutil: Spec.Binary is empty")
	}
	bin := spec.Binary
	if !strings.ContainsRune(bin, os.PathSeparator) {
		found, err := exec.LookPath(bin)
		if err != nil {
			return nil, fmt.Errorf("finding %s: %w", bin, err)
		}
		bin = found
	}
	name := spec.Name
	if name == "" {
		name = filepath.Base(bin)
	}
	logPath := spec.LogFile
	if logPath == "" {
		logPath = filepath.Join(spec.Dir, name+".log")
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, spec.Args...)
	cmd.Dir = spec.Dir
	// Later entries win in os/exec, so Env may override PATH and HOME.
	home := cmp.Or(spec.Dir, filepath.Dir(logPath))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}, spec.Env...)
	sink := &logSink{file: f}
	// One writer for both streams: os/exec then uses a single pipe, so
	// stdout and stderr lines keep their order.
	cmd.Stdout, cmd.Stderr = sink, sink
	// A grandchild that inherited the pipe must not keep Wait blocked.
	cmd.WaitDelay = 2 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{name: name, logPath: logPath, spec: spec, cmd: cmd, sink: sink, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pdeathsig fires when the thread that forked the child exits, not the
// process (see PR_SET_PDEATHSIG in prctl(2)). Go may retire threads, so
// every child is forked from one goroutine locked to a thread that lives
// as long as the test binary.
var (
	spawnOnce sync.Once
	spawnReqs chan func()
)

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan func())
		go func() {
			runtime.LockOSThread()
			for f := range spawnReqs {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnReqs <- func() { errc <- cmd.Start() }
	return <-errc
}

func (p *Proc) cleanup(t testing.TB) {
	sig, grace := p.spec.StopSignal, p.spec.StopGrace
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if grace == 0 {
		grace = 5 * time.Second
	}
	p.Stop(sig, grace)
	n := p.spec.TailLines
	if n == 0 {
		n = 40
	}
	if t.Failed() && n > 0 {
		t.Logf("--- %s (pid %d, %s), last lines of %s ---\n%s", p.name, p.Pid(), p.cmd.ProcessState, p.logPath, p.Tail(n))
	}
}

// Name returns the process's name in logs.
func (p *Proc) Name() string { return p.name }

// Pid returns the process id, which is also its process group id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// LogPath returns the file that holds the process's output.
func (p *Proc) LogPath() string { return p.logPath }

// Cmd returns the started command, for reading ProcessState once Done is
// closed. Do not call its Wait, Start or Run.
func (p *Proc) Cmd() *exec.Cmd { return p.cmd }

// Done is closed when the process has exited and its output is written.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig os.Signal) error {
	if !p.Running() {
		return os.ErrProcessDone
	}
	return p.cmd.Process.Signal(sig)
}

// signalGroup sends sig to the process's group, which also reaches the
// children it forked (redis-server's rewrite and save children).
func (p *Proc) signalGroup(sig syscall.Signal) error {
	if !p.Running() {
		return os.ErrProcessDone
	}
	return syscall.Kill(-p.Pid(), sig)
}

// Stop sends sig and waits up to grace for the process to exit; then it
// kills the process group. It returns once the process has exited, and
// does nothing if it already has. A paused process is resumed, so it can
// act on sig.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	if sig != syscall.SIGKILL {
		_ = p.signalGroup(syscall.SIGCONT)
	}
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.signalGroup(syscall.SIGKILL)
	<-p.done
}

// Kill kills the process group with SIGKILL (a crash) and waits for the
// process to exit.
func (p *Proc) Kill() {
	_ = p.signalGroup(syscall.SIGKILL)
	<-p.done
}

// Pause stops the process group with SIGSTOP: it keeps its sockets open but
// answers nothing, like a stalled server.
func (p *Proc) Pause() error { return p.signalGroup(syscall.SIGSTOP) }

// Resume continues a paused process group (SIGCONT).
func (p *Proc) Resume() error { return p.signalGroup(syscall.SIGCONT) }

// Wait waits up to timeout for the process to exit. It returns ErrRunning
// if it has not, else what exec.Cmd.Wait returned (nil for exit status 0).
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return ErrRunning
	}
}

// Err returns how the process ended (nil for exit status 0), or ErrRunning.
func (p *Proc) Err() error {
	if p.Running() {
		return ErrRunning
	}
	return p.err
}

// ExitCode returns the exit status, or -1 while running or when killed by
// a signal.
func (p *Proc) ExitCode() int {
	if p.Running() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Output returns everything the process has written so far (its log file).
func (p *Proc) Output() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return "reading " + p.logPath + ": " + err.Error()
	}
	return string(data)
}

// Tail returns the last n lines the process wrote, from memory, each cut
// to a readable length.
func (p *Proc) Tail(n int) string { return p.sink.tail(n) }

// Tail keeps this many lines of up to tailLineMax bytes.
const (
	tailKeep    = 200
	tailLineMax = 1000
)

// logSink writes a process's output to its log file and keeps the last
// lines in memory. os/exec writes from a single goroutine; tail reads from
// others.
type logSink struct {
	file io.Writer

	mu      sync.Mutex
	lines   []string // ring of the last tailKeep complete lines
	next    int
	partial []byte
}

func (s *logSink) Write(b []byte) (int, error) {
	n, err := s.file.Write(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.appendPartial(b)
			break
		}
		s.appendPartial(b[:i])
		s.push(string(s.partial))
		s.partial = s.partial[:0]
		b = b[i+1:]
	}
	return n, err
}

func (s *logSink) appendPartial(b []byte) {
	if room := tailLineMax + 1 - len(s.partial); room > 0 {
		s.partial = append(s.partial, b[:min(len(b), room)]...)
	}
}

func (s *logSink) push(line string) {
	if len(line) > tailLineMax {
		line = line[:tailLineMax] + "…"
	}
	if len(s.lines) < tailKeep {
		s.lines = append(s.lines, line)
		return
	}
	s.lines[s.next] = line
	s.next = (s.next + 1) % tailKeep
}

func (s *logSink) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ordered := append(append([]string(nil), s.lines[s.next:]...), s.lines[:s.next]...)
	if len(s.partial) > 0 {
		ordered = append(ordered, string(s.partial))
	}
	if n >= 0 && len(ordered) > n {
		ordered = ordered[len(ordered)-n:]
	}
	return strings.Join(ordered, "\n")
}

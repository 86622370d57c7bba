package payload

import "bytes"

// RuleNodeJS is server-side JavaScript injection into Node.js: loading a
// module that reaches the system ("require('child_process')",
// "process.mainModule.require"), calling the process's or a child
// process's functions ("process.kill(", "child_process.exec(",
// ".execSync("), or reaching them through the Function constructor
// ("this.constructor.constructor('return process')()"), or a function
// serialized for node-serialize ("_$$ND_FUNC$$_function(){...}()").
const RuleNodeJS = "nodejs"

// nodeModules are the modules whose loading by an injection reaches files,
// processes, the network or the VM.
var nodeModules = set("child_process", "fs", "fs/promises", "net", "http", "https", "os", "vm", "process", "dgram",
	"cluster", "worker_threads", "module", "dns", "tls", "v8", "node:child_process", "node:fs", "node:net",
	"node:os", "node:vm", "node:process", "node:http", "node:https", "node:worker_threads")

// nodeCalls are the calls that run commands, read files or end the
// process, after "process.", "child_process." or a module handle.
var nodeCalls = newVocabWords([]string{"process.mainmodule", "process.binding(", "process.dlopen(", "process.kill(",
	"process.exit(", "process.abort(", "process.openstdin(", "process.setuid(", "process.chdir(", "global.process",
	"globalthis.process", "child_process", ".execsync(", ".spawnsync(", ".execfilesync(", "readfilesync(",
	"readdirsync(", "writefilesync(", "module.require(", "module.constructor", "return process",
	"return this.process", "return global", "process.env)", "process.env[", "process.env.", "process.cwd()",
	"res.end(", "res.send(", "res.write(", "_$$nd_func$$_"})

// nodeStrong are the calls that count without any other code around them.
var nodeStrong = set("process.mainmodule", "process.binding(", "process.dlopen(", "process.kill(", "global.process", "globalthis.process",
	"child_process", ".execsync(", ".spawnsync(", ".execfilesync(", "module.require(", "module.constructor",
	"return process", "return this.process", "return global", "_$$nd_func$$_")

// nodejsAnalyzer reads values as JavaScript run by the server.
type nodejsAnalyzer struct{}

func (nodejsAnalyzer) Name() string { return "nodejs" }

func (nodejsAnalyzer) needs() uint64 { return clsParen | clsDot }

func (nodejsAnalyzer) Analyze(in *Input) (Finding, bool) {
	if !in.Has(clsParen|clsDot) || in.Field.IsKey || in.Binary() {
		return Finding{}, false
	}
	have := in.foldedClasses()
	f := in.Folded()
	if len(f) < 8 {
		return Finding{}, false
	}
	if have&(clsParen|clsQuote) == clsParen|clsQuote && have&letters("require") == letters("require") && nodeRequire(f) {
		return Finding{Rule: RuleNodeJS, Score: ScoreCritical}, true
	}
	hits, strong := 0, false
	for k := range nodeCalls {
		c := &nodeCalls[k]
		if !in.mayContain(c) || !contains(f, c.w) {
			continue
		}
		hits++
		if nodeStrong[c.w] {
			strong = true
		}
	}
	switch {
	case strong || hits >= 2:
		return Finding{Rule: RuleNodeJS, Score: ScoreCritical}, true
	case hits == 1 && have&(clsSemi|clsParen) == clsSemi|clsParen:
		return in.weak(Finding{Rule: RuleNodeJS, Score: ScoreWarning})
	}
	return Finding{}, false
}

// nodeRequire reports require('<module>') of a module in nodeModules.
func nodeRequire(f []byte) bool {
	for off := 0; ; {
		i := index(f[off:], "require")
		if i < 0 {
			return false
		}
		i += off
		off = i + 7
		if i > 0 && isWordByte(f[i-1]) {
			continue
		}
		j := skipSpace(f, off)
		if j >= len(f) || f[j] != '(' {
			continue
		}
		j = skipSpace(f, j+1)
		if j >= len(f) || (f[j] != '\'' && f[j] != '"' && f[j] != '`') {
			continue
		}
		q := f[j]
		end := bytes.IndexByte(f[j+1:], q)
		if end < 0 || end > 32 {
			continue
		}
		if nodeModules[str(f[j+1:j+1+end])] {
			return true
		}
	}
}

var _ Analyzer = nodejsAnalyzer{}

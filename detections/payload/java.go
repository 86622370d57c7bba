package payload

import (
	"bytes"
	"strings"

	"github.com/rampartgw/rampart/detections"
)

// Rule ids of the Java analyzer.
const (
	// RuleJavaCode is Java code reaching the runtime: a class of the Core
	// Rule Set's java-classes.data used as code (a static call, a
	// constructor, a class literal in an expression: "new
	// java.lang.ProcessBuilder(", "java.lang.Runtime.getRuntime()",
	// "T(java.lang.System)"), or a reflection chain
	// ("getRuntime().exec(", "Class.forName('...')").
	RuleJavaCode = "java_code"
	// RuleJavaDeserialization is a serialized Java object (the AC ED 00 05
	// stream magic, raw, hex "aced0005" or base64 "rO0AB"), a known
	// deserialization gadget class, or a polymorphic-typing document that
	// names a JDK or library class ("@type": "com.sun.rowset.JdbcRowSetImpl",
	// "!!javax.script.ScriptEngineManager", <object class="...ProcessBuilder">).
	RuleJavaDeserialization = "java_deserialization"
	// RuleJavaExpression is an OGNL, SpEL or EL expression that reaches
	// the runtime: "@java.lang.Runtime@getRuntime()", "#_memberAccess",
	// "(#context[...])", "${pageContext...}", "#{request.getClass()}".
	RuleJavaExpression = "java_expression"
)

// javaAnalyzer reads values as Java, OGNL, SpEL and EL. A class name is
// code only where code uses it; in a stack trace ("at
// java.lang.String.valueOf(String.java:2994)", "Caused by:
// java.lang.RuntimeException") it is text.
type javaAnalyzer struct{}

func (javaAnalyzer) Name() string { return "java" }

func (javaAnalyzer) needs() uint64 {
	// The class, expression and typing markers, and the letters of the
	// serialization magic in base64 ('r') and hex ('c').
	return clsDot | clsAt | clsHash | clsUpper | clsHigh | clsControl | letter('r') | letter('c')
}

// javaDangerous are the parts of class names whose use as code is an
// attack by itself: process, reflection, class loading, scripting, JNDI,
// files and sockets, and the frameworks whose expression languages reach
// them.
var javaDangerous = []string{
	"runtime", "processbuilder", "process", "reflect", "classloader", "scriptengine", "initialcontext",
	"objectinputstream", "xmldecode", "java.io.file", "socket", "java.net.url", "httpurlconnection",
	"jarurlconnection", "java.lang.system", "java.lang.class", "ognl", "struts", "xwork2", "freemarker",
	"javassist", "commons", "sun.reflect", "com.sun.org.apache", "java.nio.file", "dom4j", "jdom2",
	"org.xml.sax", "javax.xml", "corba", "propertyutilsbean", "declaredclass",
}

// javaGadgets are classes that only deserialization exploits name.
var javaGadgets = []string{
	"invokertransformer", "chainedtransformer", "constanttransformer", "instantiatetransformer",
	"templatesimpl", "annotationinvocationhandler", "badattributevalueexpexception", "jdbcrowsetimpl",
	"lazymap", "transformedmap", "priorityqueue.comparator", "convertedclosure", "methodclosure",
	"beancomparator", "combopooleddatasource", "ysoserial", "c3p0.wrapperconnectionpooldatasource",
	"unicastref", "activationgroupimpl", "scriptenginemanager", "jndidatasourcefactory", "jndirefforwardingdatasource",
	"sparkconf", "groovy.util.expando", "xbean.naming", "rmiconnectorserver",
}

// javaPolymorphic are the type-name keys of JSON and YAML object mappers.
var javaPolymorphic = []string{`"@type"`, `"@class"`, `"@c"`, `'@type'`, `"@type\"`}

func (javaAnalyzer) Analyze(in *Input) (Finding, bool) {
	if in.Field.IsKey {
		return Finding{}, false
	}
	d := in.Decoded()
	if len(d) < 5 {
		return Finding{}, false
	}
	if len(d) >= 20 && javaMagicClasses(in.Classes()) && javaSerialized(d) {
		return Finding{Rule: RuleJavaDeserialization, Score: ScoreCritical}, true
	}
	if in.Binary() || !in.Has(clsDot|clsAt|clsHash|clsBrace) {
		return Finding{}, false
	}
	if in.Field.Kind == detections.FieldBody && isXMLField(in) {
		// In an XML document the element and attribute names are the
		// application's structure: the markup is read for XMLDecoder's
		// elements, the rest in the data only.
		if fd, ok := javaTyped(in, in.Folded()); ok {
			return fd, ok
		}
		var fd Finding
		found := false
		xmlChunks(in, in.Field.Value, func(c string) bool {
			fd, found = javaCheck(in.Sub(c))
			return !found
		})
		return fd, found
	}
	return javaCheck(in)
}

// javaCheck reads one value (or one datum of an XML document).
func javaCheck(in *Input) (Finding, bool) {
	if !in.Has(clsDot | clsAt | clsHash | clsBrace) {
		return Finding{}, false
	}
	f := in.Folded()
	if in.Has(clsDot) && (in.Has(clsAt|clsBang|clsLT) || in.Field.Kind == detections.FieldJSON) {
		if fd, ok := javaTyped(in, f); ok {
			return fd, ok
		}
		for k := range gadgetWords {
			if g := &gadgetWords[k]; in.mayContain(g) && contains(f, g.w) {
				return Finding{Rule: RuleJavaDeserialization, Score: ScoreCritical}, true
			}
		}
	}
	if in.Has(clsAt|clsHash|clsBrace|clsParen) && javaExpression(in, f) {
		return Finding{Rule: RuleJavaExpression, Score: ScoreCritical}, true
	}
	if !in.Has(clsDot) {
		return Finding{}, false
	}
	score := javaCode(in, f)
	switch {
	case score >= ScoreCritical:
		return Finding{Rule: RuleJavaCode, Score: ScoreCritical}, true
	case score > 0:
		return in.weak(Finding{Rule: RuleJavaCode, Score: score})
	}
	return Finding{}, false
}

// javaMagicClasses reports whether a value with these classes can hold
// the stream magic: raw (bytes >= 0x80), in base64 ("rO0AB": upper case, r
// and b) or in hex ("aced": a, c, e, d).
func javaMagicClasses(c uint64) bool {
	const b64 = clsUpper | clsLetterA<<('r'-'a') | clsLetterA<<('b'-'a')
	const hex = clsLetterA | clsLetterA<<('c'-'a') | clsLetterA<<('e'-'a') | clsLetterA<<('d'-'a')
	return c&clsHigh != 0 || c&b64 == b64 || c&hex == hex
}

// javaSerialized reports the Java serialization stream magic AC ED 00 05:
// raw, in hex ("aced0005") or in base64 ("rO0AB", which also starts the
// URL-safe and unpadded forms), at the start of the value or after a
// separator ("data=rO0AB...", "base64,rO0AB").
func javaSerialized(d []byte) bool {
	if bytes.Contains(d, []byte("\xac\xed\x00\x05")) {
		return true
	}
	for _, magic := range [...]string{"rO0AB", "aced0005", "ACED0005"} {
		if bytes.IndexByte(d, magic[0]) < 0 {
			continue
		}
		for off := 0; ; {
			i := index(d[off:], magic)
			if i < 0 {
				break
			}
			i += off
			off = i + 1
			if i > 0 && (isAlnum(d[i-1]) || d[i-1] == '+' || d[i-1] == '/') {
				continue
			}
			// A stream must follow the magic: TC_OBJECT and a class
			// descriptor, well over a dozen bytes of the same encoding.
			j := i
			for j < len(d) && (isAlnum(d[j]) || d[j] == '+' || d[j] == '/' || d[j] == '-' || d[j] == '_') {
				j++
			}
			if j-i >= 24 {
				return true
			}
		}
	}
	return false
}

// javaTyped reports a polymorphic-typing document naming a JDK or library
// class: a JSON "@type"/"@class" key (in the body's own fields, or in a
// JSON document passed as a string), a YAML "!!" tag, an XMLDecoder
// element.
func javaTyped(in *Input, f []byte) (Finding, bool) {
	if in.Field.Kind == detections.FieldJSON {
		name := in.Field.Name
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			name = name[i+1:]
		}
		if (name == "@type" || name == "@class" || name == "@c") && javaLibraryClass(f) {
			return Finding{Rule: RuleJavaDeserialization, Score: ScoreCritical}, true
		}
		// Jackson's array form: ["com.sun.rowset.JdbcRowSetImpl", {...}].
		if strings.HasSuffix(in.Field.Name, "[0]") && javaLibraryClass(f) && bytes.IndexByte(f, ' ') < 0 && javaClassName(f) {
			return Finding{Rule: RuleJavaDeserialization, Score: ScoreCritical}, true
		}
	}
	for _, k := range javaPolymorphic {
		if !in.Has(clsAt) {
			break
		}
		for off := 0; ; {
			i := index(f[off:], k)
			if i < 0 {
				break
			}
			i += off
			off = i + len(k)
			j := skipSpace(f, off)
			if j < len(f) && f[j] == ':' {
				j = skipSpace(f, j+1)
				for j < len(f) && (f[j] == '"' || f[j] == '\'' || f[j] == '\\') {
					j++
				}
				if javaLibraryClass(f[j:]) {
					return Finding{Rule: RuleJavaDeserialization, Score: ScoreCritical}, true
				}
			}
		}
	}
	for off := 0; in.Has(clsBang); {
		i := index(f[off:], "!!")
		if i < 0 {
			break
		}
		i += off
		off = i + 2
		if javaLibraryClass(f[off:]) {
			return Finding{Rule: RuleJavaDeserialization, Score: ScoreCritical}, true
		}
	}
	if !in.Has(clsLT) {
		return Finding{}, false
	}
	if i := index(f, "<object class="); i >= 0 || contains(f, "java.beans.xmldecoder") {
		if i < 0 || javaLibraryClass(bytes.TrimLeft(f[i+len("<object class="):], `"'`)) || contains(f, "<void method=") {
			return Finding{Rule: RuleJavaDeserialization, Score: ScoreCritical}, true
		}
	}
	return Finding{}, false
}

// javaClassName reports a whole value that is a dotted class name with a
// class part ("com.sun.rowset.jdbcrowsetimpl"): at least three parts.
func javaClassName(f []byte) bool {
	parts := 1
	for _, c := range f {
		switch {
		case c == '.':
			parts++
		case !isWordByte(c) && c != '$':
			return false
		}
	}
	return parts >= 3
}

// javaLibraryClass reports a class name at the start of f that belongs to
// the JDK or to the libraries whose classes deserialization gadgets use.
func javaLibraryClass(f []byte) bool {
	for _, p := range [...]string{"java.", "javax.", "sun.", "com.sun.", "org.apache.", "org.springframework.",
		"org.codehaus.", "com.mchange.", "org.hibernate.", "bsh.", "clojure.", "org.mozilla.", "com.alibaba.",
		"oracle.", "org.jboss.", "com.zaxxer.", "ch.qos.logback.", "org.slf4j.", "br.com.anteros.", "com.ibatis.",
		"org.aspectj.", "groovy.", "freemarker."} {
		if hasPrefix(f, p) && len(f) > len(p) && isLetter(f[len(p)]) {
			return true
		}
	}
	for _, g := range javaGadgets {
		if hasPrefix(f, g) {
			return true
		}
	}
	return false
}

// ognlWords are fragments of OGNL exploits (Struts 2).
var ognlWords = newVocabWords([]string{"#_memberaccess", "@ognl.", "ognlcontext", "#context[", "#context.", ".getclass().forname(",
	"#application[", "#session[", "#parameters[", "#attr[", "#request[", "@org.apache.struts", "#dm=", "(#_=",
	"excludedclasses", "excludedpackagenames", "allowstaticmethodaccess"})

// elWords are EL implicit objects and reflection inside ${...} or #{...}.
var elWords = newVocabWords([]string{"pagecontext", "applicationscope", "sessionscope", "requestscope", "facescontext",
	"initparam", ".getclass()", "getclassloader", "getruntime", "processbuilder", "class.forname", "classloader"})

// javaExpression reports OGNL, SpEL and EL that reach the runtime in f,
// in's folded value.
func javaExpression(in *Input, f []byte) bool {
	have := in.foldedClasses()
	for k := range ognlWords {
		if s := &ognlWords[k]; in.mayContain(s) && contains(f, s.w) {
			return true
		}
	}
	// @java.lang.Runtime@getRuntime(): an OGNL static member.
	for off := 0; have&clsAt != 0; {
		i := index(f[off:], "@")
		if i < 0 {
			break
		}
		i += off
		off = i + 1
		j := i + 1
		dots := 0
		for j < len(f) && (isWordByte(f[j]) || f[j] == '.' || f[j] == '$') {
			if f[j] == '.' {
				dots++
			}
			j++
		}
		if dots >= 1 && j > i+3 && j+1 < len(f) && f[j] == '@' && isLetter(f[j+1]) && javaLibraryClass(f[i+1:j]) {
			return true
		}
	}
	// T(java.lang.Runtime): SpEL's type operator.
	for off := 0; have&(clsParen|letter('t')) == clsParen|letter('t'); {
		i := index(f[off:], "t(")
		if i < 0 {
			break
		}
		i += off
		off = i + 2
		if i > 0 && isWordByte(f[i-1]) {
			continue
		}
		j := skipSpace(f, i+2)
		if javaLibraryClass(f[j:]) {
			return true
		}
	}
	// EL implicit objects inside ${...} or #{...}, read up to the '}' (or
	// the end of the value). An opener inside a body already read ends at
	// the same '}': its body is a part of that one, with no word that one
	// lacks, so each byte is read once however the openers nest.
	for _, open := range [...]string{"${", "#{"} {
		close := -1 // the end of the last body read
		for off := 0; have&clsBrace != 0; {
			i := index(f[off:], open)
			if i < 0 {
				break
			}
			i += off
			off = i + 2
			if off <= close {
				continue
			}
			close = len(f)
			if e := bytes.IndexByte(f[off:], '}'); e >= 0 {
				close = off + e
			}
			body := f[off:close]
			for k := range elWords {
				if s := &elWords[k]; in.mayContain(s) && contains(body, s.w) {
					return true
				}
			}
		}
	}
	return false
}

// javaReflection are the reflection and class-loading calls of exploits.
var javaReflection = newVocabWords([]string{"getruntime().exec(", "getruntime()", ".getclassloader()", "class.forname(",
	".getdeclaredmethod(", ".getmethod(", "new processbuilder(", ".loadclass(", "defineclass(", "getdeclaredconstructor(",
	"scriptenginemanager()"})

var gadgetWords = newVocabWords(javaGadgets)

// javaCode scores Java classes and reflection used as code in f, in's
// folded value.
func javaCode(in *Input, f []byte) int {
	have := in.foldedClasses()
	// Every reflection call of the list holds "get", "class",
	// "processbuilder" or "scriptengine".
	reflective := have&clsParen != 0 && (contains(f, "get") || contains(f, "class") || contains(f, "processbuilder") || contains(f, "scriptengine"))
	for k := range javaReflection {
		if !reflective {
			break
		}
		s := &javaReflection[k]
		if !in.mayContain(s) {
			continue
		}
		i := index(f, s.w)
		if i < 0 || javaStackFrame(f, i+len(s.w)-1) {
			continue
		}
		return ScoreCritical
	}
	best := 0
	// The classes start with a few prefixes; look for each once.
	present := javaPrefixScan(f)
	if present == 0 {
		return best
	}
	classes := words().javaClasses
	// The last line found to be a stack-trace line, so that the many class
	// names of one line (a trace, or a line built to look like one) read
	// it once.
	traceStart, traceEnd := -1, -1
	for k := range classes {
		cw := &classes[k]
		if present&javaPrefixOf(cw.w) == 0 || !in.mayContain(cw) {
			continue
		}
		c := cw.w
		for off := 0; ; {
			i := index(f[off:], c)
			if i < 0 {
				break
			}
			i += off
			off = i + len(c)
			if i > 0 && (isWordByte(f[i-1]) || f[i-1] == '.') {
				continue
			}
			end := i + len(c)
			if end < len(f) && isWordByte(f[end]) && !strings.HasSuffix(c, ".") {
				// "java.lang.Stringbuilder" is not "java.lang.String";
				// a package ("org.apache.commons") may go on.
				if !javaPackage(c) {
					continue
				}
			}
			s := javaUse(f, i, end)
			if s == 0 {
				// Named without code around it: the classes that only
				// exploits name still count, outside a stack trace.
				if !javaExploitClass(c) || traceStart <= i && i < traceEnd {
					continue
				}
				start, end := javaLine(f, i)
				if !javaTraceLine(f[start:end]) {
					return ScoreCritical
				}
				traceStart, traceEnd = start, end
				continue
			}
			if s >= ScoreCritical && !javaIsDangerous(c) && !javaReflects(f[end:]) {
				s = ScoreWarning
			}
			best = max(best, s)
			if best >= ScoreCritical {
				return best
			}
		}
	}
	return best
}

// javaPrefixes are the first parts of the class names of
// java-classes.data ("java.lang.Runtime", "org.apache.commons").
var javaPrefixes = [...]string{"java", "javax", "com", "org", "sun", "freemarker"}

// javaPrefixScan returns the set (bit k for javaPrefixes[k]) of those
// prefixes that start a dotted name in f, in one pass over its dots.
func javaPrefixScan(f []byte) uint8 {
	var set uint8
	for off := 0; ; {
		i := bytes.IndexByte(f[off:], '.')
		if i < 0 {
			return set
		}
		i += off
		off = i + 1
		j := i
		for j > 0 && isLetter(f[j-1]) && i-j < 10 {
			j--
		}
		if j == i || j > 0 && (isWordByte(f[j-1]) || f[j-1] == '.') {
			continue
		}
		w := str(f[j:i])
		for k, p := range javaPrefixes {
			if w == p {
				set |= 1 << k
			}
		}
	}
}

// javaPrefixOf returns the bit of the prefix of class c, every bit when
// it has none of them.
func javaPrefixOf(c string) uint8 {
	first, _, _ := strings.Cut(c, ".")
	for k, p := range javaPrefixes {
		if first == p {
			return 1 << k
		}
	}
	return 0xff
}

// javaPackage reports an entry that names a package, not a class: its
// last part starts with a lower-case letter in Java's spelling, which the
// folded form has lost, so the known packages are listed by their ends.
func javaPackage(c string) bool {
	last := c[strings.LastIndexByte(c, '.')+1:]
	switch last {
	case "xwork2", "apache", "core", "template", "rhino", "reflect", "commons", "struts", "struts2", "parsers",
		"stream", "file", "io", "corba", "sax", "javassist":
		return true
	}
	return false
}

// javaExploitClasses are the classes and packages of the list whose name
// alone, outside a stack trace, is an exploit's: process creation,
// reflection, scripting and JNDI, XMLDecoder, OGNL's and the gadget
// libraries'.
var javaExploitClasses = []string{"java.lang.runtime", "java.lang.processbuilder", "java.lang.reflect", "javax.script",
	"javax.naming.initialcontext", "java.beans.xmldecode", "com.opensymphony.xwork2", "com.sun.org.apache", "sun.reflect",
	"org.apache.commons.collections", "javassist"}

func javaExploitClass(c string) bool {
	for _, e := range javaExploitClasses {
		if strings.HasPrefix(c, e) {
			return true
		}
	}
	return false
}

// javaLine returns the bounds of the line of f around f[i].
func javaLine(f []byte, i int) (start, end int) {
	start = bytes.LastIndexAny(f[:i], "\n\r") + 1
	end = bytes.IndexAny(f[i:], "\n\r")
	if end < 0 {
		return start, len(f)
	}
	return start, end + i
}

// javaTraceLine reports whether line is a stack-trace line: "at ..."
// frames, "Caused by:", an exception's message line, or a source location
// ("(Runtime.java:347)") after the name.
func javaTraceLine(line []byte) bool {
	line = bytes.TrimSpace(line)
	return hasPrefix(line, "at ") || hasPrefix(line, "caused by") || contains(line, "exception") ||
		contains(line, ".java:") || contains(line, "(native method)") || contains(line, "(unknown source)")
}

func javaIsDangerous(c string) bool {
	for _, d := range javaDangerous {
		if strings.Contains(c, d) {
			return true
		}
	}
	return false
}

// javaReflects reports a reflection call right after a class name:
// "java.lang.String.class.forName(", ".getMethod(", ".getClass()".
func javaReflects(f []byte) bool {
	f = f[:min(len(f), 64)]
	for _, s := range [...]string{".forname(", ".getmethod(", ".getclass(", ".getdeclared", ".invoke(", ".newinstance(", ".getruntime("} {
		if contains(f, s) {
			return true
		}
	}
	return false
}

// javaUse scores how the class name f[i:end] is used: critical as code (a
// call on it, a constructor, a SpEL or OGNL type reference, an XMLDecoder
// or polymorphic type name), nothing in a stack trace or as a bare word.
func javaUse(f []byte, i, end int) int {
	before := i - 1
	for before >= 0 && f[before] == ' ' {
		before--
	}
	if before >= 2 && string(f[before-2:before+1]) == "at " || before >= 0 && f[before] == ':' {
		return 0
	}
	if i >= 4 && string(f[i-4:i]) == "new " {
		return ScoreCritical
	}
	if before >= 0 && (f[before] == '(' && before > 0 && f[before-1] == 't' || f[before] == '@' || f[before] == '"' && before > 6 && contains(f[max(0, before-12):before], "class=")) {
		return ScoreCritical
	}
	if end < len(f) && f[end] == '@' {
		return ScoreCritical // OGNL: @java.lang.Runtime@getRuntime()
	}
	// A static call: ".name(" after the class (or after a nested class).
	j := end
	for j < len(f) && (isWordByte(f[j]) || f[j] == '$') {
		j++
	}
	if j < len(f) && f[j] == '.' {
		k := j + 1
		for k < len(f) && isWordByte(f[k]) {
			k++
		}
		if k > j+1 && k < len(f) && f[k] == '(' {
			if javaStackFrame(f, k) {
				return 0
			}
			return ScoreCritical
		}
	}
	return 0
}

// javaStackFrame reports a stack-trace frame's source location at the
// '(' at f[i]: "(String.java:2994)", "(Native Method)", "(Unknown Source)".
func javaStackFrame(f []byte, i int) bool {
	if i >= len(f) || f[i] != '(' {
		return false
	}
	rest := f[i+1:]
	if hasPrefix(rest, "native method)") || hasPrefix(rest, "unknown source)") {
		return true
	}
	j := 0
	for j < len(rest) && (isWordByte(rest[j]) || rest[j] == '$' || rest[j] == '-') {
		j++
	}
	return j > 0 && (hasPrefix(rest[j:], ".java:") || hasPrefix(rest[j:], ".java)") || hasPrefix(rest[j:], ".kt:") || hasPrefix(rest[j:], ".scala:") || hasPrefix(rest[j:], ".groovy:"))
}

var _ Analyzer = javaAnalyzer{}

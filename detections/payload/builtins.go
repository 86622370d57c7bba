package payload

import "github.com/rampartgw/rampart/detections"

// builtins lists the analyzers that ship with the gateway, in the order they
// run. Adding an analyzer is one file plus one line here.
func builtins(cfg Config) []Analyzer {
	return []Analyzer{
		// Specific attacks first: when several analyzers recognise the
		// same payload, the block log names the most precise rule.
		log4shellAnalyzer{},
		shellshockAnalyzer{},
		xxeAnalyzer{},
		ssiAnalyzer{},
		sstiAnalyzer{},
		javaAnalyzer{},
		nosqliAnalyzer{},
		protoPollutionAnalyzer{},
		nodejsAnalyzer{},
		crlfAnalyzer{},
		mailAnalyzer{},
		ldapiAnalyzer{},
		xpathAnalyzer{},
		newSSRFAnalyzer(cfg.SSRFAllowHosts),
		rfiAnalyzer{},
		phpAnalyzer{},
		sqliAnalyzer{},
		xssAnalyzer{},
		cmdiAnalyzer{},
		uploadAnalyzer{},
		traversalAnalyzer{},
		sensitiveFilesAnalyzer{},
		sessionAnalyzer{},
		protocolAnalyzer{maxParts: orDefault(cfg.MaxParts, detections.DefaultMaxParts)},
		encodingAnalyzer{},
		overrideAnalyzer{},
		newBase64Analyzer(),
	}
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

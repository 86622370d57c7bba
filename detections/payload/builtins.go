package payload

// builtins lists the analysers that ship with the gateway, in the order they
// run. Adding an analyser is one file plus one line here.
func builtins(cfg Config) []Analyzer {
	return []Analyzer{
		// Specific attacks first: when several analysers recognise the
		// same payload, the block log names the most precise rule.
		log4shellAnalyzer{},
		shellshockAnalyzer{},
		xxeAnalyzer{},
		sstiAnalyzer{},
		nosqliAnalyzer{},
		protoPollutionAnalyzer{},
		crlfAnalyzer{},
		ldapiAnalyzer{},
		newSSRFAnalyzer(cfg.SSRFAllowHosts),
		sqliAnalyzer{},
		xssAnalyzer{},
		cmdiAnalyzer{},
		traversalAnalyzer{},
		protocolAnalyzer{},
		newBase64Analyzer(),
	}
}

package console

// HumanDuration is humanDuration, for the tests.
var HumanDuration = humanDuration

/// What `apikeyd --version` prints: the release, raised with each issue that changes what the
/// server does.
let apikeydVersion = "0.13.0"

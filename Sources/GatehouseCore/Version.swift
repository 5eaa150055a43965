/// The version of this build: what `gatehouse --version` prints, `GET /v1/version` answers, the
/// service logs at start and `gatehouse_build_info` carries. The chart's `appVersion` and the
/// image tag the README builds are the same.
public let gatehouseVersion = "0.1.0"

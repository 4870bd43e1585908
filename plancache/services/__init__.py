"""gRPC servicers: each translates messages and calls PlanCache, nothing more."""

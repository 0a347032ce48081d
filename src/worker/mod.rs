//! Worker: subscribes to every route's query channel with one group, answers each request
//! through the router, and replies through the broker.

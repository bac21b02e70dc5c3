//! `CLUSTER FAILOVER` on a replica while four writers create, read, touch, update and delete:
//! the store rides through the switch (redirections, `READONLY`, a reconnect) and no call
//! returns an error.

mod common;

use std::time::Duration;

use common::load::{self, Mix};

#[test]
fn a_manual_failover_during_writes_reaches_no_caller() {
    let Some(nodes) = common::cluster("manual failover") else {
        return;
    };
    assert!(
        common::poll_until(Duration::from_secs(30), || common::healthy(&nodes)),
        "the cluster starts healthy"
    );
    let store = common::store(&nodes, "failover", common::clock());
    let topology = common::topology(&nodes[0]).expect("CLUSTER NODES");
    let replica = topology
        .iter()
        .find(|node| !node.master && !node.failing)
        .expect("a replica")
        .clone();
    let (outcome, promoted) = load::run(&store, 4, 20, Mix::Everything, |done| {
        load::calls(done, 400);
        let reply: String = redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query(&mut common::node(&replica.address).expect("the replica answers"))
            .expect("CLUSTER FAILOVER");
        assert_eq!(reply, "OK");
        let promoted = common::poll_until(Duration::from_secs(20), || {
            common::info_field(&replica.address, "replication", "role").as_deref() == Some("master")
        });
        // Keep writing for a while on the new topology.
        load::calls(done, 400);
        promoted
    });
    assert!(promoted, "{} became master", replica.address);
    assert!(
        common::poll_until(Duration::from_secs(30), || common::healthy(&nodes)),
        "the cluster is healthy again"
    );
    println!(
        "manual failover of {}: {} calls, {} creates, {} errors, slowest call {:?}",
        replica.address,
        outcome.calls,
        outcome.acks.len(),
        outcome.errors.len(),
        outcome.slowest
    );
    assert!(
        outcome.errors.is_empty(),
        "no error reaches a caller: {:?}",
        outcome.errors.iter().take(5).collect::<Vec<_>>()
    );
}

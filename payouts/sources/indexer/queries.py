"""The GraphQL documents the builder sends: one entity per root field, each with a stable order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entity:
    field: str  # root query field, e.g. "nodes"
    type_name: str  # GraphQL type, e.g. "Node" (NodeWhereInput, NodeOrderByInput)
    order: str  # a unique, stable order for offset paging
    selection: str

    @property
    def document(self) -> str:
        return (
            f"query {self.field}($where: {self.type_name}WhereInput, $limit: Int, $offset: Int) "
            f"{{ {self.field}(where: $where, orderBy: {self.order}, limit: $limit, offset: $offset) "
            f"{{ {self.selection} }} }}"
        )

    @property
    def keyset_document(self) -> str:
        """A page after a known id (the `where` bounds the ids): no offset to skip over."""
        return (
            f"query {self.field}($where: {self.type_name}WhereInput, $limit: Int) "
            f"{{ {self.field}(where: $where, orderBy: {self.order}, limit: $limit) {{ {self.selection} }} }}"
        )

    @property
    def count_document(self) -> str:
        return (
            f"query {self.field}Count($where: {self.type_name}WhereInput) "
            f"{{ {self.field}Connection(where: $where, orderBy: {self.order}) {{ totalCount }} }}"
        )


POLICIES = Entity(
    "farmingPolicies",
    "FarmingPolicy",
    "farmingPolicyID_ASC",
    "farmingPolicyID name cu su nu ipv4 minimalUptime immutable default nodeCertification farmCertification",
)
NODES = Entity(
    "nodes",
    "Node",
    "nodeID_ASC",
    "nodeID farmID twinID created farmingPolicyId certification virtualized "
    "connectionPrice resourcesTotal { cru mru sru hru } power { state target }",
)
FARMS = Entity("farms", "Farm", "farmID_ASC", "farmID name twinID certification stellarAddress")
TWINS = Entity("twins", "Twin", "twinID_ASC", "twinID relay publicKey")
UPTIME = Entity("uptimeEvents", "UptimeEvent", "[nodeID_ASC, timestamp_ASC, id_ASC]", "nodeID timestamp uptime")
POWER_TARGETS = Entity(
    "powerTargetReports",
    "PowerTargetReport",
    "[nodeID_ASC, timestamp_ASC, id_ASC]",
    "id nodeID newPowerTarget timestamp",
)
POWER_STATES = Entity(
    "powerStateReports", "PowerStateReport", "[nodeID_ASC, timestamp_ASC, id_ASC]", "id nodeID newPowerState timestamp"
)
CONTRACTS = Entity(
    "nodeContracts",
    "NodeContract",
    "contractID_ASC",
    "contractID nodeID numberOfPublicIPs state createdAt resourcesUsed { cru mru sru hru }",
)
NRU = Entity("nruConsumptions", "NruConsumption", "id_ASC", "id contractID timestamp nru")

UPTIME_BY_ID = Entity("uptimeEvents", "UptimeEvent", "id_ASC", "id nodeID timestamp uptime")
POWER_TARGETS_BY_ID = Entity("powerTargetReports", "PowerTargetReport", "id_ASC", "id nodeID newPowerTarget timestamp")
POWER_STATES_BY_ID = Entity("powerStateReports", "PowerStateReport", "id_ASC", "id nodeID newPowerState timestamp")
BILLS_BY_ID = Entity("contractBillReports", "ContractBillReport", "id_ASC", "id contractID timestamp")
FIRST_FROM_QUERY = (
    "query first_from($where: UptimeEventWhereInput) "
    "{ uptimeEvents(where: $where, orderBy: id_ASC, limit: 1) { id timestamp } }"
)

STATUS_QUERY = (
    # the newest report in chain order: a walk down the primary key, not a sort of the table
    "query status { squidStatus { height } uptimeEvents(orderBy: id_DESC, limit: 1) { timestamp } }"
)
TOTALS_QUERY = (
    "query totals { nodesConnection(orderBy: nodeID_ASC) { totalCount } "
    "farmsConnection(orderBy: farmID_ASC) { totalCount } "
    "twinsConnection(orderBy: twinID_ASC) { totalCount } }"
)


# -- record parsing: every field checked, errors name the record ---------------------------

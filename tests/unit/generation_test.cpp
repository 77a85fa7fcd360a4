// Generations on reload: what carries over, the change line, and what a draining generation
// counts after the switch reaching the generation that serves when it ends, exactly once.

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <vector>

#include "conf/loader.hpp"
#include "master/generation.hpp"

namespace sluice {
namespace {

// A config listing `addresses` as targets, read as sluice reads its file.
Config config_of(std::initializer_list<const char*> addresses, const std::string& top = "") {
    std::string text = top;
    for (const char* a : addresses) text += "[[targets]]\naddress = \"" + std::string(a) + "\"\n";
    return parse_config(text, "test.toml");
}

net::Endpoint endpoint(const std::string& host, uint16_t port) {
    std::string error;
    auto list = net::resolve({host, port}, error);
    EXPECT_FALSE(list.empty()) << error;
    return list.front();
}

// What worker 1 of generation `g` does for one connection to address `a` of target `t`;
// `still_open`: the connection stays counted in the ledger and in the worker's share.
void serve(Generation& g, size_t t, size_t a, uint64_t bytes, bool still_open = false) {
    SharedTable& table = g.segment.table();
    table.connections.fetch_add(1);
    TargetSlot& slot = table.slot(t, a);
    slot.connections.fetch_add(1);
    slot.bytes_to_target.fetch_add(bytes);
    slot.bytes_to_client.fetch_add(2 * bytes);
    if (still_open) {
        g.ledger->ledger().active(table, SharedTable::slot_index(t, a)).fetch_add(1);
        table.worker_active[0][SharedTable::slot_index(t, a)].fetch_add(1);
    }
}

// The open connections the ledger counts for address `a` of target `t` of `g`.
uint64_t open_connections(const Generation& g, size_t t, size_t a) {
    return g.ledger->ledger().active(g.segment.table(), SharedTable::slot_index(t, a)).load();
}

// A config of `n` targets 127.0.0.1:first .. first+n-1.
Config config_of_range(int first, int n) {
    std::string text;
    for (int p = first; p < first + n; ++p)
        text += "[[targets]]\naddress = \"127.0.0.1:" + std::to_string(p) + "\"\n";
    return parse_config(text, "test.toml");
}

TEST(Generation, ReloadCarriesHealthAndCountersOfKeptTargets) {
    auto first = make_generation(config_of({"127.0.0.1:8001", "127.0.0.1:8002"}), 2, nullptr);
    SharedTable& before = first->segment.table();
    EXPECT_EQ(before.groups[0].address_count, 1u);
    EXPECT_EQ(before.slot(0, 0).up, 1u) << "a target that resolves starts healthy";
    before.slot(0, 0).up = 0;
    before.slot(0, 0).reason = static_cast<uint32_t>(DownReason::refused);
    before.slot(0, 0).passive_failures = 4;
    before.rejected_limit = 6;
    serve(*first, 0, 0, 10, true);

    auto second = make_generation(config_of({"127.0.0.1:8003", "127.0.0.1:8001"}), 3, first.get());
    const SharedTable& after = second->segment.table();
    EXPECT_EQ(second->number, 2u);
    EXPECT_EQ(after.generation, 2u);
    EXPECT_EQ(after.reloads, 1u);
    EXPECT_EQ(after.connections, 1u);
    EXPECT_EQ(after.rejected_limit, 6u);
    const TargetSlot& kept = after.slot(1, 0);
    net::Endpoint address;
    ASSERT_TRUE(kept.load_address(address));
    EXPECT_EQ(address.to_string(), "127.0.0.1:8001");
    EXPECT_EQ(kept.up, 0u) << "known DOWN stays DOWN";
    EXPECT_EQ(kept.reason, static_cast<uint32_t>(DownReason::refused));
    EXPECT_EQ(kept.passive_failures, 4u);
    EXPECT_EQ(kept.connections, 1u);
    EXPECT_EQ(kept.bytes_to_client, 20u);
    EXPECT_EQ(second->ledger, first->ledger) << "one ledger for every generation";
    EXPECT_EQ(after.groups[1].ledger_group, before.groups[0].ledger_group);
    EXPECT_EQ(open_connections(*second, 1, 0), 1u)
        << "the old generation's open connection counts against the new one's cap";
    EXPECT_NE(after.groups[0].ledger_group, before.groups[0].ledger_group);
    EXPECT_NE(after.groups[0].ledger_group, before.groups[1].ledger_group)
        << "a new target takes a group no live generation uses";
    EXPECT_EQ(open_connections(*second, 0, 0), 0u);
    EXPECT_EQ(after.groups[0].address_count, 0u) << "a new target is left to the new checker";
    EXPECT_EQ(after.slot(0, 0).up, 0u);
    EXPECT_EQ(after.slot(0, 0).connections, 0u);
    ASSERT_NE(first->handed_over, nullptr);
    EXPECT_EQ(second->handed_over, nullptr);
}

// The master resolves no name during a reload (it would reap and answer signals no more while
// a resolver hangs): a new target, even one whose address is a literal, gets no address from
// make_generation; the new generation's checker resolves it in its first round.
TEST(Generation, ReloadResolvesNoNewTarget) {
    auto first = make_generation(config_of({"127.0.0.1:8001"}), 1, nullptr);
    EXPECT_EQ(first->segment.table().groups[0].address_count, 1u) << "start-up resolves";
    auto second = make_generation(config_of({"127.0.0.1:8001", "127.0.0.1:8002", "localhost:8003"}),
                                  1, first.get());
    const SharedTable& table = second->segment.table();
    EXPECT_EQ(table.groups[0].address_count, 1u) << "a kept target keeps its address";
    EXPECT_EQ(table.groups[1].address_count, 0u);
    EXPECT_EQ(table.groups[2].address_count, 0u);
    net::Endpoint none;
    EXPECT_FALSE(table.slot(1, 0).load_address(none));
}

// Each generation's table says how long its checker may be silent, and starts with a fresh
// heartbeat so that a checker that is just starting is not taken for a missing one.
TEST(Generation, CheckerSilenceBoundFollowsTheLongestCheck) {
    auto first = make_generation(
        config_of({"127.0.0.1:8001"}, "[health_check]\ninterval = \"20s\"\ntimeout = \"5s\"\n"), 1,
        nullptr);
    const SharedTable& table = first->segment.table();
    EXPECT_EQ(table.checker_stale_after_ms, 50'000);
    EXPECT_FALSE(checker_silent(table, monotonic_ms()));
    EXPECT_TRUE(checker_silent(table, monotonic_ms() + 50'001));
    EXPECT_EQ(checker_stale_after_ms(
                  config_of({"127.0.0.1:8001"}, "[health_check]\ninterval = \"100ms\"\n")),
              kMinCheckerSilenceMs);
}

TEST(Generation, DescribeChanges) {
    auto a = make_generation(config_of({"127.0.0.1:8001", "127.0.0.1:8002"}), 2, nullptr);
    auto b = make_generation(config_of({"127.0.0.1:8002", "127.0.0.1:8003"}), 3, a.get());
    EXPECT_EQ(describe_changes(*a, *b), "targets +127.0.0.1:8003 -127.0.0.1:8001, workers 2 -> 3");
    auto c = make_generation(config_of({"127.0.0.1:8003", "127.0.0.1:8002"}), 3, b.get());
    EXPECT_EQ(describe_changes(*b, *c), "no change to targets or workers");
    auto d = make_generation(
        config_of({"127.0.0.1:8003", "127.0.0.1:8002"}, "listen = \"127.0.0.1:9000\"\n"), 3,
        c.get());
    EXPECT_EQ(describe_changes(*c, *d), "listen 0.0.0.0:80 -> 127.0.0.1:9000");
}

TEST(Generation, WhatADrainingGenerationCountsJoinsTheCurrentOne) {
    auto first = make_generation(config_of({"127.0.0.1:8001", "127.0.0.1:8002"}), 2, nullptr);
    serve(*first, 0, 0, 10);
    auto second = make_generation(config_of({"127.0.0.1:8001"}), 2, first.get());
    // After the switch: the old workers finish connections, the new ones serve; one old
    // worker is stopped at drain_timeout with its connection still counted.
    serve(*first, 0, 0, 100, true);
    serve(*first, 1, 0, 1000);  // a target the new config dropped
    first->segment.table().rejected_no_target.fetch_add(3);
    serve(*second, 0, 0, 5, true);
    EXPECT_EQ(open_connections(*second, 0, 0), 2u);

    carry_over_drained(*first, *second);
    const SharedTable& now = second->segment.table();
    EXPECT_EQ(now.connections, 4u);
    EXPECT_EQ(now.rejected_no_target, 3u);
    const TargetSlot& slot = now.slot(0, 0);
    EXPECT_EQ(slot.connections, 3u);
    EXPECT_EQ(slot.bytes_to_target, 115u);
    EXPECT_EQ(slot.bytes_to_client, 230u);
    EXPECT_EQ(open_connections(*second, 0, 0), 1u)
        << "the finished generation's stopped worker's connection is given back";
}

TEST(Generation, ChainedReloadsCountEachConnectionOnce) {
    auto g1 = make_generation(config_of({"127.0.0.1:8001"}), 1, nullptr);
    serve(*g1, 0, 0, 1);
    auto g2 = make_generation(config_of({"127.0.0.1:8001"}), 1, g1.get());
    serve(*g1, 0, 0, 10);  // g1 drains
    serve(*g2, 0, 0, 100);
    auto g3 = make_generation(config_of({"127.0.0.1:8001"}), 1, g2.get());
    serve(*g1, 0, 0, 1000);  // g1 still drains, g2 too
    serve(*g2, 0, 0, 10000);
    serve(*g3, 0, 0, 100000);
    // g1 ends first, when g3 already serves, then g2: both hand to g3.
    carry_over_drained(*g1, *g3);
    carry_over_drained(*g2, *g3);
    const TargetSlot& slot = g3->segment.table().slot(0, 0);
    EXPECT_EQ(slot.connections, 6u);
    EXPECT_EQ(slot.bytes_to_target, 111111u);
    EXPECT_EQ(g3->segment.table().connections, 6u);
}

TEST(Generation, ATargetAddedBackWhileItsOldGenerationDrainsGetsItsGroupAgain) {
    auto g1 = make_generation(config_of({"127.0.0.1:8001", "127.0.0.1:8002"}), 1, nullptr);
    const uint32_t held = g1->segment.table().groups[1].ledger_group;
    auto g2 = make_generation(config_of({"127.0.0.1:8001"}), 1, g1.get());
    // g1 still drains, holding connections to 8002: its cap must count them in g3 too.
    auto g3 = make_generation(config_of({"127.0.0.1:8001", "127.0.0.1:8002"}), 1, g2.get());
    EXPECT_EQ(g3->segment.table().groups[1].ledger_group, held);
}

TEST(Generation, ANewTargetTakesAGroupNoLiveGenerationUsesAndThatCountsNothing) {
    auto g1 = make_generation(config_of({"127.0.0.1:8001", "127.0.0.1:8002"}), 1, nullptr);
    const uint32_t dropped = g1->segment.table().groups[1].ledger_group;
    auto g2 = make_generation(config_of({"127.0.0.1:8001"}), 1, g1.get());
    auto g3 = make_generation(config_of({"127.0.0.1:8001", "127.0.0.1:8003"}), 1, g2.get());
    EXPECT_NE(g3->segment.table().groups[1].ledger_group, dropped) << "g1 still drains";
    // g1 has ended, but its group still counts a connection nobody gave back.
    const LedgerBook& book = *g1->ledger;
    g1->ledger->ledger().groups[dropped].active[3] = 1;
    g1.reset();
    EXPECT_EQ(book.holders(dropped), 0u);
    auto g4 = make_generation(config_of({"127.0.0.1:8001", "127.0.0.1:8004"}), 1, g3.get());
    EXPECT_NE(g4->segment.table().groups[1].ledger_group, dropped);
    // Once it counts nothing, the group is free again.
    g4->ledger->ledger().groups[dropped].active[3] = 0;
    auto g5 = make_generation(config_of({"127.0.0.1:8001", "127.0.0.1:8005"}), 1, g4.get());
    EXPECT_EQ(g5->segment.table().groups[1].ledger_group, dropped);
}

TEST(Generation, ReloadFailsWithNothingChangedWhenEveryGroupIsInUse) {
    constexpr int kTargets = static_cast<int>(kMaxTargets);
    std::vector<std::unique_ptr<Generation>> live;
    live.push_back(make_generation(config_of_range(10000, kTargets), 1, nullptr));
    for (size_t g = 1; g < kLedgerGroups / kMaxTargets; ++g) {
        live.push_back(
            make_generation(config_of_range(10000 + static_cast<int>(g) * kTargets, kTargets), 1,
                            live.back().get()));
    }
    Generation& serving = *live.back();
    EXPECT_THROW(make_generation(config_of_range(20000, 1), 1, &serving), std::runtime_error);
    EXPECT_EQ(serving.handed_over, nullptr) << "a failed reload changes nothing";
    // A kept target needs no new group.
    EXPECT_NE(make_generation(config_of_range(10000 + 3 * kTargets, 1), 1, &serving), nullptr);
}

TEST(CounterCarry, FollowsTheAddressNotTheSlotOnPlainTables) {
    auto from = std::make_unique<SharedTable>();
    auto to = std::make_unique<SharedTable>();
    const Config config = config_of({"web:80"});
    from->target_count = 1;
    from->groups[0].address_count = 2;
    from->slot(0, 0).store_address(endpoint("10.0.0.1", 80));
    from->slot(0, 1).store_address(endpoint("10.0.0.2", 80));
    from->slot(0, 1).connections = 7;
    const CounterMark mark = mark_counters(*from);
    EXPECT_EQ(mark.slots.size(), kAddressesPerTarget);
    from->slot(0, 0).connections += 1;
    from->slot(0, 1).connections += 2;
    from->slot(0, 1).passive_failures += 3;
    // In the current table the checker has since put 10.0.0.2 first, and 10.0.0.1 is gone.
    to->groups[0].address_count = 1;
    to->slot(0, 0).store_address(endpoint("10.0.0.2", 80));
    to->slot(0, 0).connections = 50;

    add_counts_since(mark, config, *from, config, *to);
    EXPECT_EQ(to->slot(0, 0).connections, 52u);
    EXPECT_EQ(to->slot(0, 0).passive_failures, 0u)
        << "the new checker would read a carried failure as its own workers' and mark DOWN";
    EXPECT_EQ(to->slot(0, 1).connections, 0u) << "a vanished address gets nothing";
}

}  // namespace
}  // namespace sluice

// Each algorithm's choice as pure logic over a shared table in memory.

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "common/shared_segment.hpp"
#include "worker/selection.hpp"

namespace sluice {
namespace {

constexpr int k = kAddressesPerTarget;

class Selection : public ::testing::Test {
protected:
    // `n` targets with one healthy address each, weights as given.
    void targets(std::vector<uint32_t> weights, Algorithm algorithm = Algorithm::round_robin) {
        config_.algorithm = algorithm;
        config_.targets.clear();
        for (size_t i = 0; i < weights.size(); ++i) {
            TargetConfig t;
            t.address = "t" + std::to_string(i) + ":1";
            t.weight = weights[i];
            config_.targets.push_back(t);
            table().groups[i].address_count = 1;
            table().groups[i].ledger_group = static_cast<uint32_t>(i);  // as the master gives
            table().slot(i, 0).up = 1;
        }
        table().target_count = static_cast<uint32_t>(weights.size());
        picker_ = std::make_unique<Picker>(config_);
    }
    SharedTable& table() { return segment_.table(); }
    // The open connections of target `t`'s first address (in the load ledger).
    std::atomic<uint64_t>& active(size_t t) {
        return ledger_.ledger().active(table(), SharedTable::slot_index(t, 0));
    }
    // The target of the first choice, or -1.
    int pick(int64_t now_ms = 0) {
        picker_->pick(table(), ledger_.ledger(), now_ms, c_);
        return c_.at(0) < 0 ? -1 : c_.at(0) / k;
    }
    std::map<int, int> picks(int n, int64_t now_ms = 0) {
        std::map<int, int> count;
        for (int i = 0; i < n; ++i) ++count[pick(now_ms)];
        return count;
    }

    SharedSegment segment_;
    LedgerSegment ledger_;
    Config config_;
    std::unique_ptr<Picker> picker_;
    Candidates c_;
};

TEST_F(Selection, RoundRobinRotatesExactly) {
    targets({1, 1, 1});
    std::vector<int> order;
    for (int i = 0; i < 6; ++i) order.push_back(pick());
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST_F(Selection, SkipsUnhealthyAndDrainingTargets) {
    targets({1, 1, 1, 1});
    table().slot(1, 0).up = 0;
    table().groups[3].draining = 1;
    EXPECT_EQ(picks(10), (std::map<int, int>{{0, 5}, {2, 5}}));
}

TEST_F(Selection, NoHealthyTargetGivesNoCandidateAndTakesNoTicket) {
    targets({1, 1});
    table().slot(0, 0).up = 0;
    table().slot(1, 0).up = 0;
    EXPECT_EQ(pick(), -1);
    EXPECT_EQ(table().round_robin.load(), 0u);
}

// While no checker runs (its heartbeat is older than the table's bound), DOWN marks are not
// trusted: a target a worker marked DOWN passively is a candidate again, in the usual order.
TEST_F(Selection, DownTargetsAreCandidatesWhileTheCheckerIsSilent) {
    targets({1, 1, 1});
    table().slot(1, 0).up = 0;
    table().checker_stale_after_ms = 3000;
    table().checker_heartbeat_ms = 10'000;
    EXPECT_EQ(picks(10, 13'000), (std::map<int, int>{{0, 5}, {2, 5}})) << "fresh: trusted";
    EXPECT_EQ(picks(9, 13'001), (std::map<int, int>{{0, 3}, {1, 3}, {2, 3}})) << "silent";
    table().groups[2].draining = 1;
    EXPECT_EQ(picks(10, 13'001), (std::map<int, int>{{0, 5}, {1, 5}})) << "draining still holds";
}

TEST_F(Selection, RetriesVisitEveryCandidateOnceStartingAtTheChoice) {
    targets({1, 1, 1});
    table().round_robin = 4;  // ticket 4 % 3 == 1
    pick();
    EXPECT_EQ(c_.at(0), 1 * k);
    EXPECT_EQ(c_.at(1), 2 * k);
    EXPECT_EQ(c_.at(2), 0);
    EXPECT_EQ(c_.at(3), -1);
}

TEST_F(Selection, EveryAddressOfANameIsACandidate) {
    targets({1, 1, 1});
    table().groups[1].address_count = 3;  // target 1 resolves to 3 addresses, one DOWN
    table().slot(1, 2).up = 1;
    pick();
    ASSERT_EQ(c_.count, 4u);
    std::vector<int> slots;
    for (size_t i = 0; i < c_.count; ++i) slots.push_back(c_.entry[i].slot);
    EXPECT_EQ(slots, (std::vector<int>{0, k, k + 2, 2 * k}));
}

TEST_F(Selection, WeightsThreeToOneGiveExactly75To25) {
    targets({3, 1});
    EXPECT_EQ(picks(400), (std::map<int, int>{{0, 300}, {1, 100}}));
}

TEST_F(Selection, WeightedRoundRobinIsSmooth) {
    targets({5, 1, 1});
    std::string order;
    for (int i = 0; i < 7; ++i) order += static_cast<char>('a' + pick());
    EXPECT_EQ(order, "aabacaa");  // nginx's smooth sequence { a, a, b, a, c, a, a }
    std::vector<uint16_t> schedule;
    smooth_weighted_schedule({5, 1, 1}, schedule);
    EXPECT_EQ(schedule, (std::vector<uint16_t>{0, 0, 1, 0, 2, 0, 0}));
}

TEST_F(Selection, LeastConnectionsTakesTheLeastLoadedPerWeight) {
    targets({1, 1, 1}, Algorithm::least_connections);
    active(0) = 5;
    active(1) = 2;
    active(2) = 7;
    EXPECT_EQ(picks(20), (std::map<int, int>{{1, 20}}));
    targets({1, 4, 1}, Algorithm::least_connections);  // 2 of 4 beats 5 and 7 of 1
    active(1) = 6;                                     // 6/4 = 1.5 still beats 5/1
    EXPECT_EQ(pick(), 1);
}

TEST_F(Selection, LeastConnectionsBreaksTiesByRotation) {
    targets({1, 1, 1}, Algorithm::least_connections);
    EXPECT_EQ(picks(30), (std::map<int, int>{{0, 10}, {1, 10}, {2, 10}}));
}

TEST_F(Selection, RandomTwoNeverPicksTheLoadedOneOfTwo) {
    targets({1, 1}, Algorithm::random_two);
    active(0) = 100;
    EXPECT_EQ(picks(50), (std::map<int, int>{{1, 50}}));
}

TEST_F(Selection, RandomTwoSpreadsEqualTargets) {
    targets({1, 1, 1, 1}, Algorithm::random_two);
    const auto count = picks(4000);
    ASSERT_EQ(count.size(), 4u);
    for (const auto& [target, n] : count) EXPECT_GT(n, 700) << target;  // 1000 expected
}

TEST_F(Selection, SlowStartRampsAWeightUp) {
    targets({1, 1});
    config_.targets[1].slow_start = Millis(10'000);
    picker_ = std::make_unique<Picker>(config_);
    table().slot(1, 0).up_since_ms = 1'000'000;  // came back UP at t = 1000 s
    // 1 s into a 10 s ramp: weight 1/16 of full (the floor), 1 connection in 17.
    EXPECT_EQ(picks(1700, 1'001'000).at(1), 100);
    // Half way: weight 8/16, 1 connection in 3.
    EXPECT_EQ(picks(1200, 1'005'000).at(1), 400);
    // Ramp over: an equal share again.
    EXPECT_EQ(picks(100, 1'011'000).at(1), 50);
}

// Targets UP since start-up never flipped (up_since_ms 0) and get their full share at once,
// however long the machine has been up: with slow_start = 2h at 35 min of uptime the split
// used to be 12/48 instead of 30/30.
TEST_F(Selection, SlowStartDoesNotRampTargetsUpSinceStartUp) {
    targets({1, 1});
    config_.targets[1].slow_start = Millis(2 * 3'600'000);
    picker_ = std::make_unique<Picker>(config_);
    const int64_t uptime_ms = 35 * 60'000;
    EXPECT_EQ(picks(60, uptime_ms), (std::map<int, int>{{0, 30}, {1, 30}}));
    // One that flipped UP later still ramps: 35 min into 2 h is 4/16 of its weight.
    table().slot(1, 0).up_since_ms = 1;
    EXPECT_EQ(picks(100, uptime_ms + 1), (std::map<int, int>{{0, 80}, {1, 20}}));
}

}  // namespace
}  // namespace sluice

// The shared table: address publication, round-robin selection, and cross-process atomics.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>

#include "common/selection.hpp"
#include "common/shared_segment.hpp"

namespace sluice {
namespace {

net::Endpoint endpoint(const std::string& host, uint16_t port) {
    std::string error;
    auto list = net::resolve({host, port}, error);
    EXPECT_FALSE(list.empty()) << error;
    return list.front();
}

TEST(SharedTable, AddressRoundTripsForIpv4AndIpv6) {
    SharedSegment segment;
    TargetSlot& slot = segment.table().slot(0, 0);
    net::Endpoint out;
    EXPECT_FALSE(slot.load_address(out)) << "no address was ever stored";
    for (const auto& ep : {endpoint("127.0.0.1", 8001), endpoint("::1", 9000)}) {
        slot.store_address(ep);
        ASSERT_TRUE(slot.load_address(out));
        EXPECT_TRUE(out == ep);
        EXPECT_EQ(out.to_string(), ep.to_string());
    }
    EXPECT_EQ(out.to_string(), "[::1]:9000");
}

TEST(SharedTable, ReaderGivesUpWhileAWriterIsMidUpdate) {
    SharedSegment segment;
    TargetSlot& slot = segment.table().slot(0, 0);
    slot.store_address(endpoint("127.0.0.1", 1));
    // A writer that died between its two sequence increments leaves the count odd.
    slot.address_seq.fetch_add(1);
    net::Endpoint out;
    EXPECT_FALSE(slot.load_address(out));
}

class Selection : public ::testing::Test {
protected:
    void SetUp() override {
        table().target_count = 3;
        for (int i = 0; i < 3; ++i) {
            table().groups[i].address_count = 1;
            table().slot(i, 0).up = 1;
        }
    }
    SharedTable& table() { return segment_.table(); }
    int pick() {
        Candidates c;
        take_candidates(table(), c);
        return c.at(0) < 0 ? -1 : c.at(0) / static_cast<int>(kAddressesPerTarget);
    }
    SharedSegment segment_;
};

TEST_F(Selection, RotatesExactlyOverHealthyTargets) {
    std::vector<int> order;
    for (int i = 0; i < 6; ++i) order.push_back(pick());
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST_F(Selection, SkipsUnhealthyTargets) {
    table().slot(1, 0).up = 0;
    std::map<int, int> count;
    for (int i = 0; i < 10; ++i) ++count[pick()];
    EXPECT_EQ(count, (std::map<int, int>{{0, 5}, {2, 5}}));
}

TEST_F(Selection, NoHealthyTargetGivesNoCandidateAndTakesNoTicket) {
    for (int i = 0; i < 3; ++i) table().slot(i, 0).up = 0;
    const uint64_t before = table().round_robin.load();
    Candidates c;
    take_candidates(table(), c);
    EXPECT_EQ(c.count, 0u);
    EXPECT_EQ(c.at(0), -1);
    EXPECT_EQ(table().round_robin.load(), before);
}

TEST_F(Selection, RetriesVisitEveryCandidateOnceStartingAtTheTicket) {
    table().round_robin = 4;  // ticket 4 % 3 == 1
    Candidates c;
    take_candidates(table(), c);
    constexpr int k = kAddressesPerTarget;
    EXPECT_EQ(c.at(0), 1 * k);
    EXPECT_EQ(c.at(1), 2 * k);
    EXPECT_EQ(c.at(2), 0);
    EXPECT_EQ(c.at(3), -1);
}

TEST_F(Selection, EveryAddressOfANameIsACandidate) {
    // Target 1's name resolves to three addresses; the middle one is DOWN.
    table().groups[1].address_count = 3;
    table().slot(1, 1).up = 0;
    table().slot(1, 2).up = 1;
    Candidates c;
    take_candidates(table(), c);
    ASSERT_EQ(c.count, 4u);
    std::vector<int> slots;
    for (size_t i = 0; i < c.count; ++i) slots.push_back(c.index[i]);
    constexpr int k = kAddressesPerTarget;
    EXPECT_EQ(slots, (std::vector<int>{0, k, k + 2, 2 * k}));
}

// Cross-process atomics are platform behaviour: K forked processes doing M fetch_add each
// on the shared counter must give exactly K*M.
TEST(SharedTable, ForkedProcessesCountExactly) {
    constexpr int kProcesses = 8;
    constexpr int kIncrements = 200'000;
    SharedSegment segment;
    std::vector<pid_t> pids;
    for (int p = 0; p < kProcesses; ++p) {
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            for (int i = 0; i < kIncrements; ++i)
                segment.table().round_robin.fetch_add(1, std::memory_order_relaxed);
            _exit(0);
        }
        pids.push_back(pid);
    }
    for (pid_t pid : pids) {
        int status = 0;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    EXPECT_EQ(segment.table().round_robin.load(),
              static_cast<uint64_t>(kProcesses) * kIncrements);
}

}  // namespace
}  // namespace sluice

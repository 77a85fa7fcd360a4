// The shared table: address publication, round-robin selection, and cross-process atomics.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>

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

// A checker killed while writing an address leaves the sequence count odd; the respawned
// checker's next write must make the address readable again (it used to keep the count odd
// for ever: 503 while the log said UP).
TEST(SharedTable, WriterAfterAWriterKilledMidUpdateIsReadable) {
    SharedSegment segment;
    TargetSlot& slot = segment.table().slot(0, 0);
    const net::Endpoint first = endpoint("127.0.0.1", 1);
    const net::Endpoint second = endpoint("::1", 2);
    const pid_t writer = fork();
    ASSERT_GE(writer, 0);
    if (writer == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives a failed test
        for (uint64_t i = 0;; ++i) slot.store_address(i % 2 ? first : second);
    }
    // Stop the writer until it is caught with the count odd (mid-update), then kill it there.
    bool caught = false;
    for (int attempt = 0; attempt < 100'000 && !caught; ++attempt) {
        while ((slot.address_seq.load() & 1) == 0) {
        }
        ASSERT_EQ(::kill(writer, SIGSTOP), 0);
        int status = 0;
        ASSERT_EQ(waitpid(writer, &status, WUNTRACED), writer);
        caught = (slot.address_seq.load() & 1) != 0;
        ASSERT_EQ(::kill(writer, caught ? SIGKILL : SIGCONT), 0);
    }
    int status = 0;
    if (!caught) ::kill(writer, SIGKILL);
    ASSERT_EQ(waitpid(writer, &status, 0), writer);
    ASSERT_TRUE(caught) << "never stopped the writer in the middle of an update";
    net::Endpoint out;
    EXPECT_FALSE(slot.load_address(out)) << "the killed writer's half-written address";
    const net::Endpoint next = endpoint("127.0.0.1", 3);
    slot.store_address(next);
    ASSERT_TRUE(slot.load_address(out)) << "the next writer's address must be readable";
    EXPECT_TRUE(out == next);
    slot.store_address(first);
    ASSERT_TRUE(slot.load_address(out));
    EXPECT_TRUE(out == first);
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
    EXPECT_EQ(segment.table().round_robin.load(), static_cast<uint64_t>(kProcesses) * kIncrements);
}

}  // namespace
}  // namespace sluice

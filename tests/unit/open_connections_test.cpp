// The registry a worker cuts its open connections with at a drain's deadline, on real
// loopback sockets: a cut connection's peers read a reset (never a clean EOF), its thread
// learns why from close(), and a relay blocked on it ends at once.

#include "worker/open_connections.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <string>

#include "common/unique_fd.hpp"
#include "tcp_pair.hpp"
#include "worker/relay.hpp"

namespace sluice::worker {
namespace {

using test::make_pair;
using test::TcpPair;

// What the peer reads next: "reset", "EOF", "data" or the error.
std::string next_read(int fd) {
    char byte = 0;
    const ssize_t n = ::recv(fd, &byte, 1, 0);
    if (n > 0) return "data";
    if (n == 0) return "EOF";
    return errno == ECONNRESET ? "reset" : std::strerror(errno);
}

TEST(OpenConnections, ACutResetsBothPeersAndTellsTheThreadWhy) {
    OpenConnections registry;
    OpenConnections::Entry& entry = registry.claim();
    TcpPair client = make_pair();
    TcpPair target = make_pair();
    entry.open(client.near.get());
    entry.set_target(target.near.get());
    EXPECT_EQ(registry.cut_all(StopReason::reload), 1u);
    EXPECT_EQ(next_read(client.far.get()), "reset");
    EXPECT_EQ(next_read(target.far.get()), "reset");
    EXPECT_EQ(entry.close(), StopReason::reload);
    EXPECT_EQ(entry.close(), StopReason::none) << "close() forgets the connection";
    registry.release(entry);
}

TEST(OpenConnections, AClosedConnectionIsNotCut) {
    OpenConnections registry;
    OpenConnections::Entry& entry = registry.claim();
    TcpPair client = make_pair();
    entry.open(client.near.get());
    EXPECT_EQ(entry.close(), StopReason::none);
    EXPECT_EQ(registry.cut_all(StopReason::shutdown), 0u);
    client.near.reset();  // a plain close: the peer reads a clean end
    EXPECT_EQ(next_read(client.far.get()), "EOF");
}

TEST(OpenConnections, WhatOpensAfterTheCutIsCutAtOnce) {
    OpenConnections registry;
    OpenConnections::Entry& entry = registry.claim();
    EXPECT_EQ(registry.cut_all(StopReason::shutdown), 0u);
    TcpPair client = make_pair();
    TcpPair target = make_pair();
    entry.open(client.near.get());
    entry.set_target(target.near.get());
    EXPECT_EQ(next_read(client.far.get()), "reset");
    EXPECT_EQ(next_read(target.far.get()), "reset");
    EXPECT_EQ(entry.close(), StopReason::shutdown);
}

TEST(OpenConnections, ATargetConnectedAfterTheCutIsResetToo) {
    OpenConnections registry;
    OpenConnections::Entry& entry = registry.claim();
    TcpPair client = make_pair();
    entry.open(client.near.get());
    EXPECT_EQ(registry.cut_all(StopReason::reload), 1u);
    TcpPair target = make_pair();
    entry.set_target(target.near.get());
    EXPECT_EQ(next_read(target.far.get()), "reset");
    EXPECT_EQ(entry.close(), StopReason::reload);
}

TEST(OpenConnections, EntriesOfExitedThreadsAreReused) {
    OpenConnections registry;
    OpenConnections::Entry& first = registry.claim();
    OpenConnections::Entry& second = registry.claim();
    EXPECT_NE(&first, &second);
    registry.release(first);
    EXPECT_EQ(&registry.claim(), &first);
}

// The worker's case: the connection's thread is blocked in the relay (no idle timeout) when
// the cut comes; the relay ends at once and the peers see resets.
TEST(OpenConnections, ACutEndsARelayBlockedOnIt) {
    OpenConnections registry;
    OpenConnections::Entry& entry = registry.claim();
    TcpPair client = make_pair();
    TcpPair target = make_pair();
    entry.open(client.near.get());
    entry.set_target(target.near.get());
    static char to_target[4096], to_client[4096];
    auto relayed = std::async(std::launch::async, [&] {
        return relay(client.near.get(), target.near.get(), to_target, to_client, sizeof to_target);
    });
    // EXPECT, not ASSERT: the relay must be cut (and joined) whatever happens here.
    EXPECT_EQ(::send(client.far.get(), "hi", 2, MSG_NOSIGNAL), 2);
    char hi[2];
    EXPECT_EQ(::recv(target.far.get(), hi, sizeof hi, MSG_WAITALL), 2);
    registry.cut_all(StopReason::shutdown);
    const RelayResult result = relayed.get();
    EXPECT_NE(result.end, RelayEnd::completed);
    EXPECT_EQ(result.bytes_to_target, 2u);
    EXPECT_EQ(entry.close(), StopReason::shutdown);
    EXPECT_EQ(next_read(client.far.get()), "reset");
    EXPECT_EQ(next_read(target.far.get()), "reset");
}

}  // namespace
}  // namespace sluice::worker

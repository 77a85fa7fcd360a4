// TargetChecker::round() on a shared table in plain memory, with a scripted resolver, probe
// and clock: rise/fall, reasons, addresses coming and going, unresolvable names, passive
// failures and up_since_ms, without a socket or a DNS lookup.

#include "health/target_checker.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

namespace sluice::health {
namespace {

// An IP literal as an endpoint (getaddrinfo parses literals without a lookup).
net::Endpoint ip(const std::string& host, uint16_t port = 8001) {
    std::string error;
    auto list = net::resolve({host, port}, error);
    EXPECT_EQ(list.size(), 1u) << error;
    return list.empty() ? net::Endpoint() : list.front();
}

ProbeResult passed() {
    ProbeResult r;
    r.healthy = true;
    r.status = 200;
    return r;
}

ProbeResult failed(DownReason reason, int status = 0) {
    ProbeResult r;
    r.reason = reason;
    r.status = status;
    return r;
}

class TargetCheckerTest : public ::testing::Test {
protected:
    TargetCheckerTest() {
        table_->target_count.store(1);
        target_.address = "api:8001";
        target_.host_port = {"api", 8001};
        target_.health_check.rise = 2;
        target_.health_check.fall = 3;
    }

    // The checker, built on first use so that a test can set the table up before.
    TargetChecker& checker() {
        if (!checker_) checker_.emplace(target_, 0, *table_, reporter_, deps());
        return *checker_;
    }

    // One round in which every address listed in `results` answers with its result.
    void round(std::map<std::string, ProbeResult> results) {
        results_ = std::move(results);
        checker().round();
    }

    TargetSlot& slot(size_t a) { return table_->slot(0, a); }
    bool up(size_t a) { return slot(a).up.load() != 0; }
    DownReason reason(size_t a) { return static_cast<DownReason>(slot(a).reason.load()); }
    size_t address_count() { return table_->groups[0].address_count.load(); }
    std::string address(size_t a) {
        net::Endpoint e;
        return slot(a).load_address(e) ? e.to_string() : "(free)";
    }

    const net::Endpoint a_ = ip("10.0.0.1"), b_ = ip("10.0.0.2"), c_ = ip("10.0.0.3"),
                        d_ = ip("10.0.0.4");
    std::vector<net::Endpoint> resolved_{a_};  // what the name resolves to; empty: it fails
    std::map<std::string, ProbeResult> results_;
    std::function<void(const net::Endpoint&)> during_probe_;  // runs inside each probe
    int64_t now_ms_ = 1000;
    TargetConfig target_;
    std::unique_ptr<SharedTable> table_ = std::make_unique<SharedTable>();  // too big for a stack

private:
    CheckerDeps deps() {
        return CheckerDeps{
            .resolve =
                [this](const net::HostPort& name, std::string& error) {
                    EXPECT_EQ(name, target_.host_port);
                    if (resolved_.empty()) error = "Name or service not known";
                    return resolved_;
                },
            .probe =
                [this](const net::Endpoint& e, const TargetConfig& target) {
                    EXPECT_EQ(&target, &target_);
                    if (during_probe_) during_probe_(e);
                    const auto it = std::as_const(results_).find(e.to_string());
                    EXPECT_NE(it, results_.end()) << "unexpected probe of " << e.to_string();
                    return it == results_.end() ? ProbeResult() : it->second;
                },
            .now_ms = [this] { return now_ms_; },
        };
    }

    HealthyCountReporter reporter_{*table_};
    std::optional<TargetChecker> checker_;
};

TEST_F(TargetCheckerTest, FirstCheckDecidesThenFallFailuresTakeItDownAndRisePassesBringItUp) {
    const auto a = a_.to_string();
    round({{a, passed()}});
    EXPECT_TRUE(up(0)) << "a new address is UP after its first passed check";
    EXPECT_EQ(slot(0).last_status.load(), 200u);
    for (int i = 1; i < target_.health_check.fall; ++i) {
        round({{a, failed(DownReason::refused)}});
        EXPECT_TRUE(up(0)) << "still UP after " << i
                           << " failure(s) of fall=" << target_.health_check.fall;
    }
    round({{a, failed(DownReason::refused)}});
    EXPECT_FALSE(up(0));
    EXPECT_EQ(reason(0), DownReason::refused);
    for (int i = 1; i < target_.health_check.rise; ++i) {
        round({{a, passed()}});
        EXPECT_FALSE(up(0)) << "still DOWN after " << i
                            << " pass(es) of rise=" << target_.health_check.rise;
    }
    round({{a, passed()}});
    EXPECT_TRUE(up(0));
    EXPECT_EQ(reason(0), DownReason::refused) << "the last failure's reason stays while UP";
}

// A check the checker could not make (out of descriptors, say) says nothing of the target:
// an UP address stays UP and a DOWN one stays DOWN, however many rounds it lasts.
TEST_F(TargetCheckerTest, ALocalFailureKeepsTheVerdict) {
    const auto a = a_.to_string();
    ProbeResult local = failed(DownReason::error);
    local.local_errno = EMFILE;
    round({{a, passed()}});
    ASSERT_TRUE(up(0));
    for (int i = 0; i < 2 * target_.health_check.fall; ++i) {
        round({{a, local}});
        EXPECT_TRUE(up(0)) << "flipped DOWN by a local failure, round " << i;
    }
    for (int i = 0; i < target_.health_check.fall; ++i) round({{a, failed(DownReason::refused)}});
    ASSERT_FALSE(up(0));
    for (int i = 0; i < 2 * target_.health_check.rise; ++i) round({{a, local}});
    EXPECT_FALSE(up(0));
    EXPECT_EQ(reason(0), DownReason::refused) << "the target's own failure stays the reason";
}

TEST_F(TargetCheckerTest, StoresTheReasonAndStatusOfEachFailure) {
    target_.health_check.fall = 1;
    const auto a = a_.to_string();
    for (const DownReason why : {DownReason::refused, DownReason::connect_timeout,
                                 DownReason::response_timeout, DownReason::reset}) {
        round({{a, failed(why)}});
        EXPECT_FALSE(up(0));
        EXPECT_EQ(reason(0), why) << down_reason_name(why);
        EXPECT_EQ(slot(0).last_status.load(), 0u);
    }
    round({{a, failed(DownReason::bad_status, 503)}});
    EXPECT_EQ(reason(0), DownReason::bad_status);
    EXPECT_EQ(slot(0).last_status.load(), 503u);
}

// 2 addresses, then 3 (the new one pending until its check), then 1: the vanished ones free
// their slots, the one left keeps its slot and its rise/fall state; a later new address takes
// the first free slot.
TEST_F(TargetCheckerTest, AddressesComeAndGoAndKnownOnesKeepTheirSlotAndState) {
    const auto a = a_.to_string(), b = b_.to_string(), c = c_.to_string(), d = d_.to_string();
    resolved_ = {a_, b_};
    round({{a, passed()}, {b, passed()}});
    EXPECT_EQ(address_count(), 2u);
    EXPECT_EQ(address(0), a);
    EXPECT_EQ(address(1), b);
    EXPECT_TRUE(up(0) && up(1));

    resolved_ = {a_, b_, c_};
    std::atomic<bool> c_pending_while_probed{false};
    during_probe_ = [&](const net::Endpoint& e) {
        if (e == c_)
            c_pending_while_probed = address_count() == 3 && address(2) == c && !up(2) &&
                                     reason(2) == DownReason::pending;
    };
    round({{a, passed()}, {b, failed(DownReason::refused)}, {c, passed()}});
    during_probe_ = nullptr;
    EXPECT_TRUE(c_pending_while_probed) << "a new address is DOWN (pending) until checked";
    EXPECT_TRUE(up(2)) << "and UP once its first check passed";
    EXPECT_TRUE(up(1)) << "1 failure of fall=3";

    resolved_ = {b_};
    round({{b, failed(DownReason::refused)}});
    EXPECT_EQ(address_count(), 2u) << "slot 1 is the last one in use";
    EXPECT_EQ(address(0), "(free)");
    EXPECT_EQ(address(1), b) << "a known address keeps its slot";
    EXPECT_EQ(address(2), "(free)");
    EXPECT_FALSE(up(0) || up(2)) << "a freed slot takes no traffic";
    EXPECT_TRUE(up(1)) << "2 failures of fall=3: its streak was kept";
    round({{b, failed(DownReason::refused)}});
    EXPECT_FALSE(up(1)) << "the third failure in a row";

    resolved_ = {b_, d_};
    round({{b, failed(DownReason::refused)}, {d, passed()}});
    EXPECT_EQ(address(0), d) << "a new address takes the first free slot";
    EXPECT_TRUE(up(0));
    EXPECT_EQ(address_count(), 2u);
}

TEST_F(TargetCheckerTest, AnUnresolvableNameTakesItsAddressesDownAsUnresolved) {
    target_.health_check.fall = 1;
    target_.health_check.rise = 1;
    resolved_ = {a_, b_};
    round({{a_.to_string(), passed()}, {b_.to_string(), passed()}});
    ASSERT_TRUE(up(0) && up(1));

    resolved_.clear();
    round({});
    for (size_t i : {0u, 1u}) {
        EXPECT_FALSE(up(i));
        EXPECT_EQ(reason(i), DownReason::unresolved);
    }
    EXPECT_EQ(address_count(), 2u) << "the addresses keep their slots through a resolver failure";

    resolved_ = {a_, b_};
    round({{a_.to_string(), passed()}, {b_.to_string(), passed()}});
    EXPECT_TRUE(up(0) && up(1));
}

TEST_F(TargetCheckerTest, ANameThatNeverResolvedHasNoAddress) {
    resolved_.clear();
    round({});
    round({});
    EXPECT_EQ(address_count(), 0u);
    EXPECT_FALSE(up(0));
}

// A worker that could not connect between two rounds wrote up=0 and counted a passive failure:
// the next round counts that as DOWN, so coming back needs `rise` passes.
TEST_F(TargetCheckerTest, PassiveFailuresBetweenRoundsTakeItDown) {
    const auto a = a_.to_string();
    round({{a, passed()}});
    ASSERT_TRUE(up(0));
    slot(0).reason.store(static_cast<uint32_t>(DownReason::refused));
    slot(0).up.store(0);
    slot(0).passive_failures.fetch_add(1);
    round({{a, passed()}});
    EXPECT_FALSE(up(0)) << "1 pass of rise=2 after the worker's failure";
    EXPECT_EQ(reason(0), DownReason::refused);
    round({{a, passed()}});
    EXPECT_TRUE(up(0));
}

// A passive failure while the probe ran outweighs the probe's success, with the worker's reason.
TEST_F(TargetCheckerTest, APassiveFailureDuringTheProbeOutweighsItsSuccess) {
    target_.health_check.rise = 1;
    const auto a = a_.to_string();
    round({{a, passed()}});
    ASSERT_TRUE(up(0));
    during_probe_ = [&](const net::Endpoint&) {
        slot(0).reason.store(static_cast<uint32_t>(DownReason::reset));
        slot(0).up.store(0);
        slot(0).passive_failures.fetch_add(1);
    };
    round({{a, passed()}});
    during_probe_ = nullptr;
    EXPECT_FALSE(up(0));
    EXPECT_EQ(reason(0), DownReason::reset);
    round({{a, passed()}});
    EXPECT_TRUE(up(0)) << "rise=1: the next pass brings it back";
}

TEST_F(TargetCheckerTest, UpSinceIsTheInjectedClockAtTheFlipToUp) {
    target_.health_check.rise = 1;
    target_.health_check.fall = 1;
    const auto a = a_.to_string();
    now_ms_ = 1000;
    round({{a, passed()}});
    EXPECT_EQ(slot(0).up_since_ms.load(), 1000);
    now_ms_ = 2000;
    round({{a, passed()}});
    EXPECT_EQ(slot(0).up_since_ms.load(), 1000) << "staying UP is no flip";
    now_ms_ = 3000;
    round({{a, failed(DownReason::refused)}});
    EXPECT_EQ(slot(0).up_since_ms.load(), 1000) << "going DOWN leaves it";
    now_ms_ = 4000;
    round({{a, passed()}});
    EXPECT_EQ(slot(0).up_since_ms.load(), 4000);
}

// What the master (or the previous generation) left in the table is where the checker starts:
// an UP address needs `fall` failures, a pending one is decided by its first check.
TEST_F(TargetCheckerTest, StartsFromTheStateInTheTable) {
    resolved_ = {a_, b_};
    table_->groups[0].address_count.store(2);
    slot(0).store_address(a_);
    slot(0).up.store(1);
    slot(1).store_address(b_);
    slot(1).reason.store(static_cast<uint32_t>(DownReason::pending));
    round({{a_.to_string(), failed(DownReason::refused)}, {b_.to_string(), passed()}});
    EXPECT_TRUE(up(0)) << "1 failure of fall=3";
    EXPECT_TRUE(up(1)) << "pending: the first check decides";
    EXPECT_EQ(address(0), a_.to_string());
}

// A probe that hangs must not delay the others: each address is probed on its own thread.
TEST_F(TargetCheckerTest, ProbesEveryAddressAtOnce) {
    resolved_ = {a_, b_, c_};
    std::atomic<int> started{0}, saw_all{0};
    during_probe_ = [&](const net::Endpoint&) {
        started.fetch_add(1);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (started.load() < 3 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        saw_all.fetch_add(started.load() == 3);
    };
    round({{a_.to_string(), passed()}, {b_.to_string(), passed()}, {c_.to_string(), passed()}});
    EXPECT_EQ(saw_all.load(), 3) << "every probe ran while the others were running";
}

}  // namespace
}  // namespace sluice::health

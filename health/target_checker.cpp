#include "health/target_checker.hpp"

#include <algorithm>
#include <chrono>
#include <random>
#include <system_error>
#include <thread>

#include "common/log.hpp"

namespace sluice::health {

using Clock = std::chrono::steady_clock;

CheckerDeps real_deps() {
    return CheckerDeps{
        .resolve = [](const net::HostPort& name,
                      std::string& error) { return net::resolve(name, error); },
        .probe = [](const net::Endpoint& address,
                    const TargetConfig& target) { return probe(address, target); },
        .now_ms = [] { return monotonic_ms(); },
    };
}

void HealthyCountReporter::report() {
    std::lock_guard lock(mutex_);  // process-local: orders the lines of checker threads
    int healthy = 0;
    for (size_t t = 0; t < table_.target_count.load(); ++t) {
        const size_t n = table_.groups[t].address_count.load();
        for (size_t a = 0; a < n && a < kAddressesPerTarget; ++a)
            healthy += table_.slot(t, a).up.load(std::memory_order_relaxed) != 0;
    }
    if (healthy == last_) return;
    last_ = healthy;
    LOG_NOTICE("Healthy targets: %d", healthy);
}

TargetChecker::TargetChecker(const TargetConfig& target, size_t index, SharedTable& table,
                             HealthyCountReporter& reporter, CheckerDeps deps)
    : target_(target), index_(index), table_(table), reporter_(reporter), deps_(std::move(deps)) {
    count_ = std::min<size_t>(table.groups[index].address_count.load(), kAddressesPerTarget);
    for (size_t a = 0; a < kAddressesPerTarget; ++a) adopt(a);
}

// Takes slot `a` over as the table has it: its address, and its verdict as the tracker's
// starting state (UP, DOWN, or unknown while still pending its first check).
void TargetChecker::adopt(size_t a) {
    AddressState& s = states_[a];
    const TargetSlot& in = slot(a);
    s.tracker = HealthTracker(rise(), fall());
    s.passive_seen = in.passive_failures.load();
    if (a >= count_ || !in.load_address(s.address)) {
        s.address = net::Endpoint();
        return;
    }
    const auto reason = static_cast<DownReason>(in.reason.load());
    s.tracker = HealthTracker(rise(), fall(),
                              in.up.load()                    ? HealthTracker::State::up
                              : reason == DownReason::pending ? HealthTracker::State::unknown
                                                              : HealthTracker::State::down);
}

void TargetChecker::run(const std::function<void()>& known) {
    std::mt19937 random(static_cast<unsigned>(std::random_device{}()) + index_);
    const auto interval = target_.health_check.interval;
    std::uniform_real_distribution<double> first(0.0, 0.1), spread(0.9, 1.1);
    bool waiting = count_ == 0;  // nothing known yet: round at once, then `known`
    if (!waiting) known();
    auto next = Clock::now() +
                (waiting ? Clock::duration::zero()
                         : std::chrono::duration_cast<Clock::duration>(interval * first(random)));
    for (;;) {
        std::this_thread::sleep_until(next);
        round();
        if (waiting) known();
        waiting = false;
        next += std::chrono::duration_cast<Clock::duration>(interval * spread(random));
        const auto now = Clock::now();
        if (next < now) next = now;  // a slow round causes no burst of catch-up checks
    }
}

void TargetChecker::round() {
    std::string error;
    const auto addresses = deps_.resolve(target_.host_port, error);
    if (addresses.empty()) {
        mark_unresolved(error);
        reporter_.report();
        return;
    }
    logged_unresolved_ = false;
    reconcile(addresses);
    std::array<ProbeResult, kAddressesPerTarget> results;
    std::array<uint64_t, kAddressesPerTarget> passive_before{};
    probe_all(results, passive_before);
    for (size_t a = 0; a < count_; ++a) {
        if (states_[a].address.valid()) publish(a, results[a], passive_before[a], "");
    }
    reporter_.report();
}

// A name that does not resolve counts as a failed check of every address it had; the
// addresses keep their slots (a resolver hiccup does not reshuffle them). A name that never
// resolved has no slot to mark, so its first failure is only logged.
void TargetChecker::mark_unresolved(const std::string& error) {
    for (size_t a = 0; a < count_; ++a) {
        if (!states_[a].address.valid()) continue;
        ProbeResult unresolved;
        unresolved.reason = DownReason::unresolved;
        publish(a, unresolved, 0, "unresolved (" + error + ")");
    }
    if (count_ == 0 && !logged_unresolved_) {
        LOG_WARN("target %s DOWN: unresolved (%s)", target_.address.c_str(), error.c_str());
        logged_unresolved_ = true;
    }
}

// Gives each resolved address a slot: an address already known keeps its slot (and its
// health), a new one takes the first free slot and is checked before it gets traffic,
// a vanished one frees its slot.
void TargetChecker::reconcile(const std::vector<net::Endpoint>& resolved) {
    for (size_t a = 0; a < count_; ++a) {
        const net::Endpoint& known = states_[a].address;
        if (known.valid() && std::find(resolved.begin(), resolved.end(), known) == resolved.end())
            free_slot(a);
    }
    for (const net::Endpoint& e : resolved) {
        bool known = false;
        for (size_t a = 0; a < count_; ++a) known |= states_[a].address == e;
        if (!known) add_address(e);
    }
    while (count_ > 0 && !states_[count_ - 1].address.valid()) --count_;
    table_.groups[index_].address_count.store(static_cast<uint32_t>(count_));
}

void TargetChecker::free_slot(size_t a) {
    AddressState& s = states_[a];
    LOG_NOTICE("target %s: address %s removed", target_.address.c_str(),
               s.address.to_string().c_str());
    slot(a).up.store(0);
    s.address = net::Endpoint();
    slot(a).store_address(s.address);
}

// Puts `e` in the first free slot, DOWN (`pending`) until its first check decides.
void TargetChecker::add_address(const net::Endpoint& e) {
    size_t a = 0;
    while (a < kAddressesPerTarget && states_[a].address.valid()) ++a;
    if (a == kAddressesPerTarget) {
        LOG_WARN("target %s resolves to more than %zu addresses: %s ignored",
                 target_.address.c_str(), kAddressesPerTarget, e.to_string().c_str());
        return;
    }
    AddressState& s = states_[a];
    s.address = e;
    s.tracker = HealthTracker(rise(), fall());
    s.passive_seen = slot(a).passive_failures.load();
    s.local_failure_logged = false;
    slot(a).up.store(0);
    slot(a).reason.store(static_cast<uint32_t>(DownReason::pending));
    slot(a).store_address(e);
    if (count_ > 0 || a > 0)
        LOG_NOTICE("target %s: address %s added", target_.address.c_str(), e.to_string().c_str());
    count_ = std::max(count_, a + 1);
}

// Probes every address in use, each on its own thread so that one that hangs delays no
// other, and stores how long each took. `passive_before` gets each slot's passive failure
// count from before its probe started.
void TargetChecker::probe_all(std::array<ProbeResult, kAddressesPerTarget>& results,
                              std::array<uint64_t, kAddressesPerTarget>& passive_before) {
    std::array<std::thread, kAddressesPerTarget> threads;
    for (size_t a = 0; a < count_; ++a) {
        if (!states_[a].address.valid()) continue;
        passive_before[a] = slot(a).passive_failures.load();
        auto work = [this, a, &results] {
            const auto start = Clock::now();
            results[a] = deps_.probe(states_[a].address, target_);
            slot(a).check_us.store(static_cast<uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start)
                    .count()));
        };
        if (count_ == 1) {
            work();
            continue;
        }
        try {
            threads[a] = std::thread(work);
        } catch (const std::system_error&) {  // out of threads (RLIMIT_NPROC, pids.max)
            work();                           // probe this address inline: slower, not lost
        }
    }
    for (auto& t : threads) {
        if (t.joinable()) t.join();
    }
}

// Applies one check to slot `a` and logs a flip. A connect failure seen by a worker
// since the last round (passive_failures grew) counts as DOWN; if it happened while
// this probe ran, the probe's success does not count.
void TargetChecker::publish(size_t a, ProbeResult result, uint64_t passive_before,
                            const std::string& detail) {
    AddressState& s = states_[a];
    TargetSlot& out = slot(a);
    if (result.local_errno != 0) {
        // Our own shortage (descriptors, memory, ports) says nothing of the target: keep its
        // verdict, and any passive failure for the next round that can judge it. Logged once
        // until a check can be made again.
        if (!s.local_failure_logged)
            LOG_WARN("target %s (%s) not checked, its state is kept: %s", target_.address.c_str(),
                     s.address.to_string().c_str(), result.describe().c_str());
        s.local_failure_logged = true;
        return;
    }
    s.local_failure_logged = false;
    const uint64_t passive = out.passive_failures.load();
    if (passive != s.passive_seen) {
        s.passive_seen = passive;
        s.tracker.force_down();
        if (result.healthy && passive != passive_before) {
            result.healthy = false;
            result.reason = static_cast<DownReason>(out.reason.load());
        }
    }
    const bool flipped = s.tracker.record(result.healthy);
    out.last_status.store(static_cast<uint32_t>(result.status));
    // The reason is written before the state, so a reader that sees DOWN sees why; it
    // stays as the last failure's reason while UP.
    if (!result.healthy) out.reason.store(static_cast<uint32_t>(result.reason));
    if (flipped && s.tracker.up()) out.up_since_ms.store(deps_.now_ms());  // slow start
    out.up.store(s.tracker.up() ? 1 : 0);
    if (flipped) log_flip(a, result, detail);
}

// Logs a flip of slot `a`: UP with what the check saw, DOWN with why (`detail` when the
// caller has a better word than the probe's, e.g. the resolver's message).
void TargetChecker::log_flip(size_t a, const ProbeResult& result, const std::string& detail) const {
    const AddressState& s = states_[a];
    if (s.tracker.up()) {
        LOG_NOTICE("target %s UP (%s, %s)", target_.address.c_str(), s.address.to_string().c_str(),
                   result.describe().c_str());
    } else {
        LOG_WARN("target %s DOWN: %s (%s)", target_.address.c_str(),
                 detail.empty() ? result.describe().c_str() : detail.c_str(),
                 s.address.to_string().c_str());
    }
}

}  // namespace sluice::health

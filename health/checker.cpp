#include "health/checker.hpp"

#include <signal.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include "common/log.hpp"
#include "health/probe.hpp"
#include "health/tracker.hpp"

namespace sluice::health {
namespace {

using Clock = std::chrono::steady_clock;

// Logs the seed's "Healthy targets: N" line whenever the number of healthy addresses changes.
class HealthyCountReporter {
public:
    explicit HealthyCountReporter(SharedTable& table) : table_(table) {}

    void report() {
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

private:
    SharedTable& table_;
    std::mutex mutex_;
    int last_ = -1;
};

// Checks one configured target, forever, on its own thread: resolves its name each round,
// gives each address a slot of the target's group, probes every address at once, and
// publishes each verdict. Sole writer of the group's addresses and verdicts.
class TargetChecker {
public:
    TargetChecker(const TargetConfig& target, size_t index, SharedTable& table,
                  HealthyCountReporter& reporter)
        : target_(target), index_(index), table_(table), reporter_(reporter) {
        // Pick up what the master (or the previous generation) left in the table.
        count_ = std::min<size_t>(table.groups[index].address_count.load(), kAddressesPerTarget);
        for (size_t a = 0; a < kAddressesPerTarget; ++a) {
            AddressState& s = states_[a];
            const TargetSlot& slot = table.slot(index, a);
            s.tracker = HealthTracker(rise(), fall());
            s.passive_seen = slot.passive_failures.load();
            if (a >= count_ || !slot.load_address(s.address)) {
                s.address = net::Endpoint();
                continue;
            }
            const auto reason = static_cast<DownReason>(slot.reason.load());
            s.tracker =
                HealthTracker(rise(), fall(),
                              slot.up.load()                  ? HealthTracker::State::up
                              : reason == DownReason::pending ? HealthTracker::State::unknown
                                                              : HealthTracker::State::down);
        }
    }

    [[noreturn]] void run() {
        std::mt19937 random(static_cast<unsigned>(std::random_device{}()) + index_);
        const auto interval = target_.health_check.interval;
        // Jitter: the first check within the first tenth of the interval, then every
        // interval +-10 %, so that many targets do not fire at once.
        std::uniform_real_distribution<double> first(0.0, 0.1), spread(0.9, 1.1);
        auto next =
            Clock::now() + std::chrono::duration_cast<Clock::duration>(interval * first(random));
        for (;;) {
            std::this_thread::sleep_until(next);
            round();
            next += std::chrono::duration_cast<Clock::duration>(interval * spread(random));
            const auto now = Clock::now();
            if (next < now) next = now;  // a slow round causes no burst of catch-up checks
        }
    }

private:
    struct AddressState {
        net::Endpoint address;  // invalid: the slot is free
        HealthTracker tracker{1, 1};
        uint64_t passive_seen = 0;
    };

    int rise() const { return target_.health_check.rise; }
    int fall() const { return target_.health_check.fall; }
    TargetSlot& slot(size_t a) { return table_.slot(index_, a); }

    void round() {
        std::string error;
        const auto addresses = net::resolve(target_.host_port, error);
        if (addresses.empty()) {
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
            reporter_.report();
            return;
        }
        logged_unresolved_ = false;
        reconcile(addresses);

        std::array<ProbeResult, kAddressesPerTarget> results;
        std::array<uint64_t, kAddressesPerTarget> passive_before{};
        std::array<std::thread, kAddressesPerTarget> threads;
        for (size_t a = 0; a < count_; ++a) {
            if (!states_[a].address.valid()) continue;
            passive_before[a] = slot(a).passive_failures.load();
            auto work = [this, a, &results] {
                const auto start = Clock::now();
                results[a] = probe(states_[a].address, target_);
                slot(a).check_us.store(static_cast<uint32_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start)
                        .count()));
            };
            // Addresses are probed at once, so one that hangs delays no other.
            if (count_ == 1)
                work();
            else
                threads[a] = std::thread(work);
        }
        for (auto& t : threads) {
            if (t.joinable()) t.join();
        }
        for (size_t a = 0; a < count_; ++a) {
            if (states_[a].address.valid()) publish(a, results[a], passive_before[a], "");
        }
        reporter_.report();
    }

    // Gives each resolved address a slot: an address already known keeps its slot (and its
    // health), a new one takes the first free slot and is checked before it gets traffic,
    // a vanished one frees its slot.
    void reconcile(const std::vector<net::Endpoint>& resolved) {
        auto listed = [&](const net::Endpoint& e) {
            return std::find(resolved.begin(), resolved.end(), e) != resolved.end();
        };
        for (size_t a = 0; a < count_; ++a) {
            AddressState& s = states_[a];
            if (!s.address.valid() || listed(s.address)) continue;
            LOG_NOTICE("target %s: address %s removed", target_.address.c_str(),
                       s.address.to_string().c_str());
            slot(a).up.store(0);
            s.address = net::Endpoint();
            slot(a).store_address(s.address);
        }
        for (const net::Endpoint& e : resolved) {
            bool known = false;
            for (size_t a = 0; a < count_; ++a) known |= states_[a].address == e;
            if (known) continue;
            size_t a = 0;
            while (a < kAddressesPerTarget && states_[a].address.valid()) ++a;
            if (a == kAddressesPerTarget) {
                LOG_WARN("target %s resolves to more than %zu addresses: %s ignored",
                         target_.address.c_str(), kAddressesPerTarget, e.to_string().c_str());
                continue;
            }
            AddressState& s = states_[a];
            s.address = e;
            s.tracker = HealthTracker(rise(), fall());
            s.passive_seen = slot(a).passive_failures.load();
            slot(a).up.store(0);
            slot(a).reason.store(static_cast<uint32_t>(DownReason::pending));
            slot(a).store_address(e);
            if (count_ > 0 || a > 0)
                LOG_NOTICE("target %s: address %s added", target_.address.c_str(),
                           e.to_string().c_str());
            count_ = std::max(count_, a + 1);
        }
        while (count_ > 0 && !states_[count_ - 1].address.valid()) --count_;
        table_.groups[index_].address_count.store(static_cast<uint32_t>(count_));
    }

    // Applies one check to slot `a` and logs a flip. A connect failure seen by a worker
    // since the last round (passive_failures grew) counts as DOWN; if it happened while
    // this probe ran, the probe's success does not count.
    void publish(size_t a, ProbeResult result, uint64_t passive_before, const std::string& detail) {
        AddressState& s = states_[a];
        TargetSlot& out = slot(a);
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
        if (flipped && s.tracker.up()) out.up_since_ms.store(monotonic_ms());  // slow start
        out.up.store(s.tracker.up() ? 1 : 0);
        if (!flipped) return;
        if (s.tracker.up()) {
            LOG_NOTICE("target %s UP (%s, %s)", target_.address.c_str(),
                       s.address.to_string().c_str(), result.describe().c_str());
        } else {
            LOG_WARN("target %s DOWN: %s (%s)", target_.address.c_str(),
                     detail.empty() ? result.describe().c_str() : detail.c_str(),
                     s.address.to_string().c_str());
        }
    }

    const TargetConfig& target_;
    const size_t index_;
    SharedTable& table_;
    HealthyCountReporter& reporter_;
    std::array<AddressState, kAddressesPerTarget> states_;
    size_t count_ = 0;
    bool logged_unresolved_ = false;
};

}  // namespace

int run_checker(const Config& config, SharedTable& table) {
    // The detached threads below run until the process exits (with _exit, right after this
    // returns), so what they use is never destroyed: allocated once and left to the exit.
    auto* reporter = new HealthyCountReporter(table);
    reporter->report();  // the count the table starts with
    for (size_t i = 0; i < config.targets.size(); ++i) {
        std::thread([&config, &table, reporter, i] {
            TargetChecker(config.targets[i], i, table, *reporter).run();
        }).detach();
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGQUIT);
    int signal_number = 0;
    while (sigwait(&stop, &signal_number) != 0) {
    }
    // The checker holds nothing that outlives it: checks in flight are simply abandoned.
    return 0;
}

}  // namespace sluice::health

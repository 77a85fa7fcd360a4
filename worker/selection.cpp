#include "worker/selection.hpp"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <thread>

namespace sluice {
namespace {

constexpr uint32_t kWeightScale = 16;  // slow start ramps in steps of 1/16
constexpr uint64_t kMaxScheduleLength = 4096;

// a/wa < b/wb without division.
bool lighter(uint64_t a, uint32_t wa, uint64_t b, uint32_t wb) { return a * wb < b * wa; }

}  // namespace

void smooth_weighted_schedule(const std::vector<uint32_t>& weights, std::vector<uint16_t>& out) {
    out.clear();
    const int64_t total = std::accumulate(weights.begin(), weights.end(), int64_t{0});
    std::vector<int64_t> current(weights.size(), 0);
    for (int64_t step = 0; step < total; ++step) {
        size_t best = 0;
        for (size_t i = 0; i < weights.size(); ++i) {
            current[i] += weights[i];
            if (current[i] > current[best]) best = i;
        }
        current[best] -= total;
        out.push_back(static_cast<uint16_t>(best));
    }
}

Picker::Picker(const Config& config) : algorithm_(config.algorithm) {
    for (const TargetConfig& t : config.targets) {
        weights_.push_back(t.weight);
        slow_start_ms_.push_back(t.slow_start.count());
    }
    random_state_ =
        (static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
         std::hash<std::thread::id>{}(std::this_thread::get_id())) |
        1;  // never zero: xorshift would stay at zero
}

void Picker::pick(SharedTable& table, const LoadLedger& ledger, int64_t now_ms, Candidates& out) {
    const size_t targets = std::min<size_t>(
        {table.target_count.load(std::memory_order_acquire), kMaxTargets, weights_.size()});
    out.count = 0;
    out.chosen = 0;
    bool equal_weights = true;
    // With no checker running, a DOWN mark is never cleared: try those addresses too.
    const bool trust_down = !checker_silent(table, now_ms);
    for (size_t t = 0; t < targets; ++t) {
        if (table.groups[t].draining.load(std::memory_order_relaxed) != 0) continue;
        const size_t addresses = std::min<size_t>(
            table.groups[t].address_count.load(std::memory_order_acquire), kAddressesPerTarget);
        for (size_t a = 0; a < addresses; ++a) {
            const size_t i = SharedTable::slot_index(t, a);
            const TargetSlot& slot = table.slots[i];
            if (trust_down && slot.up.load(std::memory_order_acquire) == 0) continue;
            uint32_t weight = weights_[t] * kWeightScale;
            // up_since_ms 0: UP since start-up (or since a reload added it), never flipped:
            // its full share at once, not a ramp counted from the machine's boot.
            const int64_t up_since = slot.up_since_ms.load(std::memory_order_relaxed);
            if (slow_start_ms_[t] > 0 && up_since != 0) {
                const int64_t since = now_ms - up_since;
                if (since < slow_start_ms_[t]) {
                    weight = std::max<uint32_t>(
                        weights_[t],
                        static_cast<uint32_t>(int64_t{weights_[t]} * kWeightScale *
                                              std::max<int64_t>(since, 0) / slow_start_ms_[t]));
                }
            }
            out.entry[out.count] = {static_cast<uint16_t>(i), weight};
            equal_weights &= weight == out.entry[0].weight;
            ++out.count;
        }
    }
    if (out.count == 0) return;  // no ticket used when nothing can be chosen
    out.ticket = table.round_robin.fetch_add(1, std::memory_order_relaxed);
    switch (algorithm_) {
        case Algorithm::round_robin:
            out.chosen = equal_weights ? out.ticket % out.count : weighted_choice(out);
            break;
        case Algorithm::least_connections:
            out.chosen = least_loaded(table, ledger, out, out.ticket % out.count, out.count);
            break;
        case Algorithm::random_two: {
            random_state_ ^= random_state_ << 13;  // xorshift64
            random_state_ ^= random_state_ >> 7;
            random_state_ ^= random_state_ << 17;
            const size_t a = random_state_ % out.count;
            const size_t b =
                out.count > 1 ? (a + 1 + (random_state_ >> 32) % (out.count - 1)) % out.count : a;
            const uint64_t load_a = ledger.active(table, out.entry[a].slot).load();
            const uint64_t load_b = ledger.active(table, out.entry[b].slot).load();
            out.chosen = lighter(load_b, out.entry[b].weight, load_a, out.entry[a].weight) ? b : a;
            break;
        }
    }
}

size_t Picker::weighted_choice(const Candidates& c) {
    bool same = cached_slots_.size() == c.count;
    for (size_t i = 0; same && i < c.count; ++i)
        same = cached_slots_[i] == c.entry[i].slot && cached_weights_[i] == c.entry[i].weight;
    if (!same) {
        cached_slots_.resize(c.count);
        cached_weights_.resize(c.count);
        for (size_t i = 0; i < c.count; ++i) {
            cached_slots_[i] = c.entry[i].slot;
            cached_weights_[i] = c.entry[i].weight;
        }
        // Smallest schedule with the same proportions, and no longer than kMaxScheduleLength.
        std::vector<uint32_t> w = cached_weights_;
        uint32_t divisor = 0;
        for (uint32_t x : w) divisor = std::gcd(divisor, x);
        uint64_t total = 0;
        for (uint32_t& x : w) total += (x /= divisor);
        if (total > kMaxScheduleLength) {
            for (uint32_t& x : w) x = std::max<uint32_t>(1, x * kMaxScheduleLength / total);
        }
        smooth_weighted_schedule(w, schedule_);
    }
    return schedule_[c.ticket % schedule_.size()];
}

size_t Picker::least_loaded(const SharedTable& table, const LoadLedger& ledger, const Candidates& c,
                            size_t from, size_t n) {
    size_t best = from;
    uint64_t best_load = ledger.active(table, c.entry[from].slot).load(std::memory_order_relaxed);
    for (size_t k = 1; k < n; ++k) {
        const size_t p = (from + k) % c.count;
        const uint64_t load = ledger.active(table, c.entry[p].slot).load(std::memory_order_relaxed);
        if (lighter(load, c.entry[p].weight, best_load, c.entry[best].weight)) {
            best = p;
            best_load = load;
        }
    }
    return best;
}

}  // namespace sluice

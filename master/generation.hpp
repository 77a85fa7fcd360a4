#pragma once
// A generation: one config with the shared segment made for it. Start-up makes generation
// 1; each valid reload makes the next one, carrying over what the checker learnt about the
// targets that are still configured.

#include <cstdint>
#include <memory>
#include <string>

#include "common/shared_segment.hpp"
#include "conf/config.hpp"

namespace sluice {

struct Generation {
    uint64_t number = 0;
    Config config;
    unsigned workers = 1;
    SharedSegment segment;
};

// Builds a generation for `config`. Targets also in `previous` (same address, host compared
// without case) keep their health, reason and resolved address: a target known DOWN stays
// DOWN until a check says otherwise. Other targets start as at start-up: healthy once their
// name resolves (resolved here, in the master, never on a connection path), DOWN with the
// reason `unresolved` otherwise.
std::unique_ptr<Generation> make_generation(Config config, unsigned workers,
                                            const Generation* previous);

// What changed between two generations, for the reload log line:
// "targets +a:1 -b:2, workers 2 -> 3" or "no change".
std::string describe_changes(const Generation& before, const Generation& after);

}  // namespace sluice

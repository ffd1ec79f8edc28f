// Background worker registration (from _PG_init while preloading).
#pragma once

namespace dataflow::worker {
void register_worker();
}

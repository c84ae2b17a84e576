/* Anchors the SkbtrailEvents C module: the contract is the header, bpf/include/events.h. */
#include "events.h"

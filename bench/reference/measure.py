"""Peak resident memory, measured the same way as bench/measure.ts."""
import resource


def peak_rss_mb():
    """VmHWM (Linux): unlike getrusage's maxrss, not inherited from the process that forked this one."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

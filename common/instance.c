/* instance.c - instance names and the paths derived from them (see instance.h). */
#include "instance.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rldi_instance_check(const char *name)
{
    if (!name)
        return -EINVAL;
    size_t n = strlen(name);
    if (n == 0 || n > RLDI_INSTANCE_MAX || name[0] == '.')
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return -EINVAL;
    }
    return 0;
}

static int fmt(char *buf, size_t len, const char *f, const char *a, const char *b)
{
    int n = snprintf(buf, len, f, a, b);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

#define SYSTEM_RUNTIME_DIR "/run/rld"

/* Every path under runtime directory DIR (+ SUFFIX). */
static int paths_in(rldi_paths *p, const char *dir, const char *suffix)
{
    int r;
    if ((r = fmt(p->runtime_dir, sizeof(p->runtime_dir), "%s%s", dir, suffix)) < 0 ||
        (r = fmt(p->socket_path, sizeof(p->socket_path), "%s/%s.sock", p->runtime_dir,
                 p->instance)) < 0 ||
        (r = fmt(p->seg_path, sizeof(p->seg_path), "%s/%s.seg", p->runtime_dir, p->instance)) < 0)
        return r;
    return fmt(p->lock_path, sizeof(p->lock_path), "%s/%s.lock", p->runtime_dir, p->instance);
}

static int name_of(const char *instance, rldi_paths *p)
{
    memset(p, 0, sizeof(*p));
    if (!instance) {
        instance = getenv("RLD_INSTANCE");
        if (!instance || !*instance)
            instance = "default";
    }
    if (rldi_instance_check(instance) < 0)
        return -EINVAL;
    strcpy(p->instance, instance);
    return 0;
}

int rldi_paths_resolve(const char *instance, rldi_paths *p)
{
    int r = name_of(instance, p);
    if (r < 0)
        return r;
    const char *dir = getenv("RLD_RUNTIME_DIR");
    if (dir && *dir)
        return paths_in(p, dir, "");
    if (geteuid() == 0)
        return paths_in(p, SYSTEM_RUNTIME_DIR, "");
    if ((dir = getenv("XDG_RUNTIME_DIR")) && *dir)
        return paths_in(p, dir, "/rld");
    return -ENOENT;
}

int rldi_paths_find(const char *instance, rldi_paths *p)
{
    int r = rldi_paths_resolve(instance, p);
    const char *env = getenv("RLD_RUNTIME_DIR");
    if ((r < 0 && r != -ENOENT) || (env && *env) || geteuid() == 0)
        return r;
    if (r == 0 && access(p->seg_path, F_OK) == 0)
        return 0;
    rldi_paths sys;
    if (name_of(p->instance, &sys) == 0 && paths_in(&sys, SYSTEM_RUNTIME_DIR, "") == 0 &&
        access(sys.seg_path, F_OK) == 0) {
        *p = sys;
        return 0;
    }
    return r;
}

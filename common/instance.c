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

int rldi_paths_resolve(const char *instance, rldi_paths *p)
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
    snprintf(p->shm_name, sizeof(p->shm_name), "/rld.%s", instance);

    const char *dir = getenv("RLD_RUNTIME_DIR");
    int r;
    if (dir && *dir)
        r = fmt(p->runtime_dir, sizeof(p->runtime_dir), "%s%s", dir, "");
    else if (geteuid() == 0)
        r = fmt(p->runtime_dir, sizeof(p->runtime_dir), "%s%s", "/run/rld", "");
    else if ((dir = getenv("XDG_RUNTIME_DIR")) && *dir)
        r = fmt(p->runtime_dir, sizeof(p->runtime_dir), "%s%s", dir, "/rld");
    else
        return -ENOENT;
    if (r < 0)
        return r;
    if ((r = fmt(p->socket_path, sizeof(p->socket_path), "%s/%s.sock", p->runtime_dir, instance)) < 0)
        return r;
    return fmt(p->lock_path, sizeof(p->lock_path), "%s/%s.lock", p->runtime_dir, instance);
}

/*
 * module.c - rld._rld, the CPython extension over librld. The public package is rld
 * (python/rld/__init__.py), which re-exports these types and adds the pure-Python helpers.
 */
#include "rldpy.h"

#ifndef RLD_PY_VERSION
#define RLD_PY_VERSION "0.0.0"
#endif

static PyObject *mod_strerror(PyObject *m, PyObject *arg)
{
    long code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    if (code < -1000000 || code > 1000000)
        return PyUnicode_FromString(rld_strerror(-1000000));
    return PyUnicode_FromString(rld_strerror((int)(code > 0 ? -code : code)));
}

/* _error(code, detail=None): the exception librld's CODE becomes (tests, and helpers that
 * raise rld errors themselves). */
static PyObject *mod_error(PyObject *m, PyObject *args)
{
    int code;
    const char *detail = NULL;
    if (!PyArg_ParseTuple(args, "i|z:_error", &code, &detail))
        return NULL;
    return rldpy_error_new(code > 0 ? -code : code, detail);
}

static PyMethodDef mod_methods[] = {
    { "strerror", mod_strerror, METH_O,
      "strerror(code, /)\n--\n\nlibrld's message for CODE (an errno value, either sign, "
      "or EABI/ECORRUPT)." },
    { "_error", mod_error, METH_VARARGS,
      "_error(code, detail=None, /)\n--\n\nThe exception instance for "
      "librld code CODE." },
    { NULL },
};

static struct PyModuleDef mod_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rld._rld",
    .m_doc = "The C extension over librld; use the package rld, which re-exports it.",
    .m_size = -1,
    .m_methods = mod_methods,
};

PyMODINIT_FUNC PyInit__rld(void);

PyMODINIT_FUNC PyInit__rld(void)
{
    PyObject *m = PyModule_Create(&mod_def);
    if (!m)
        return NULL;
    if (rldpy_errors_init(m) < 0 || rldpy_result_init(m) < 0 || rldpy_limit_init(m) < 0 ||
        rldpy_template_init(m) < 0 || rldpy_client_init(m) < 0 || rldpy_async_init(m) < 0 ||
        rldpy_upstream_init(m) < 0 ||
        PyModule_AddIntConstant(m, "librld_version", rld_version()) < 0 ||
        PyModule_AddStringConstant(m, "__version__", RLD_PY_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "PRIORITY_MAX", RLD_PRIORITY_MAX) < 0 ||
        PyModule_AddIntConstant(m, "F_DEGRADED", RLD_F_DEGRADED) < 0 ||
        PyModule_AddIntConstant(m, "F_UNLIMITED", RLD_F_UNLIMITED) < 0 ||
        PyModule_AddIntConstant(m, "F_OVERFLOW", RLD_F_OVERFLOW) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

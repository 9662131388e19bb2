/**
 * Readable text for the errno values the kernel answers with, as `strerror(3)`
 * would print them ("File exists", not "EEXIST"). Shared by the netlink and
 * sysctl adapters so both word their errors the same way.
 */
import { constants } from 'node:os'
import { getSystemErrorName } from 'node:util'

const TEXT: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  ERANGE: 'Numerical result out of range',
  ENAMETOOLONG: 'File name too long',
  ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many levels of symbolic links',
  EMSGSIZE: 'Message too long',
  EPROTONOSUPPORT: 'Protocol not supported',
  EOPNOTSUPP: 'Operation not supported',
  ENOTSUP: 'Operation not supported',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENETUNREACH: 'Network is unreachable',
  ENOBUFS: 'No buffer space available',
}

/** Positive errno number for a code name, e.g. errnoNumber('EEXIST') === 17. */
export function errnoNumber (code: keyof typeof constants.errno): number {
  return constants.errno[code]
}

/** The symbolic name of a positive errno number ('EEXIST'), or 'errno N'. */
export function errnoName (errno: number): string {
  try { return getSystemErrorName(-Math.abs(errno)) } catch { return `errno ${errno}` }
}

/** strerror-like text for an errno number or code name. */
export function errnoText (errno: number | string): string {
  const name = typeof errno === 'number' ? errnoName(errno) : errno
  return TEXT[name] ?? name
}

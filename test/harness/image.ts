/**
 * The test image. Nothing can be pulled here, so `bb` is made from Debian's
 * busybox-static: a root filesystem with /bin/busybox, one symlink per applet
 * (sh, httpd, nc, ping, sleep, ip, nslookup, …), /etc/passwd and /etc/group,
 * packed with tar(1) and loaded with `docker import`, `CMD ["sh"]`.
 *
 * The tar is built in the engine's own directory (it goes away with it); it
 * takes a few tens of milliseconds, so there is no cache shared between engines.
 * Busybox's `wget` crashes here: test HTTP with `nc` inside containers.
 */
import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { execFile } from '../../src/kernel/exec.js'
import type { Dockerd } from './dockerd.js'

const BUSYBOX = process.env.FERRY_E2E_BUSYBOX ?? '/bin/busybox'

/** Import the busybox image as `name` into the engine unless it is there already. */
export async function ensureBusyboxImage (d: Dockerd, name = 'bb'): Promise<void> {
  const have = await d.docker(['image', 'inspect', '--format', '{{.Id}}', name])
  if (have.code === 0) return
  const tar = join(d.dir, 'busybox-rootfs.tar')
  if (!existsSync(tar)) await buildBusyboxTar(join(d.dir, 'busybox-rootfs'), tar)
  await d.dockerOk(['import', '--change', 'CMD ["sh"]', tar, name])
}

/** Lay out the root filesystem in `rootfs` and pack it into `tarFile`. */
export async function buildBusyboxTar (rootfs: string, tarFile: string): Promise<void> {
  const { stdout } = await execFile([BUSYBOX, '--list'])
  const applets = stdout.split('\n').filter((a) => a !== '' && a !== 'busybox' && !a.includes('/'))
  for (const dir of ['bin', 'etc', 'tmp', 'root', 'var', 'proc', 'sys', 'dev']) mkdirSync(join(rootfs, dir), { recursive: true })
  chmodSync(join(rootfs, 'tmp'), 0o1777)
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'))
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755)
  for (const a of applets) {
    if (!existsSync(join(rootfs, 'bin', a))) symlinkSync('busybox', join(rootfs, 'bin', a))
  }
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n')
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n')
  await execFile(['tar', '-C', rootfs, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarFile, '.'])
}

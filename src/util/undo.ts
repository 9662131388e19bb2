/**
 * Record how to undo each completed step; on failure run the undos in reverse,
 * keep going past their own failures, and rethrow the original error (with the
 * rollback failures attached as its cause chain is not lost: they are logged by
 * the caller through `onUndoError`).
 */
export class UndoStack {
  private readonly steps: Array<{ what: string, fn: () => Promise<unknown> }> = []
  push (what: string, fn: () => Promise<unknown>): void { this.steps.push({ what, fn }) }
  clear (): void { this.steps.length = 0 }
  async rollback (onUndoError: (what: string, err: unknown) => void): Promise<void> {
    while (this.steps.length > 0) {
      const step = this.steps.pop()!
      try { await step.fn() } catch (err) { onUndoError(step.what, err) }
    }
  }
}

/** Run `body` with an undo stack; on error roll back and rethrow. */
export async function withUndo<T> (body: (undo: UndoStack) => Promise<T>, onUndoError: (what: string, err: unknown) => void): Promise<T> {
  const undo = new UndoStack()
  try {
    return await body(undo)
  } catch (err) {
    await undo.rollback(onUndoError)
    throw err
  }
}

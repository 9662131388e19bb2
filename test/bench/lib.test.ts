import t from 'tap'
import { pairedRatio, pairedText, roundOrder } from '../../bench/lib.js'

t.test('roundOrder: two targets alternate A B, B A, B A, A B; every order of three comes up in six rounds', async (t) => {
  t.same([0, 1, 2, 3].map((i) => roundOrder(2, i)), [[0, 1], [1, 0], [1, 0], [0, 1]])
  const orders = new Set([0, 1, 2, 3, 4, 5].map((i) => roundOrder(3, i).join('')))
  t.same([...orders].sort(), ['012', '021', '102', '120', '201', '210'])
  t.same(roundOrder(1, 5), [0])
})

t.test('pairedRatio: the ratios of each round, their median and quartiles', async (t) => {
  const r = pairedRatio([10, 10, 10, 10], [8, 9, 10, 20])
  t.same(r, { n: 4, median: 0.9, q1: 0.8, q3: 1, min: 0.8, max: 2 })
  t.equal(pairedText(r), '0.90 (IQR 0.80–1.00, range 0.80–2.00, 4 rounds)')
  t.equal(pairedRatio([0, 10], [5, 5]).n, 1, 'a round with a zero reference is left out')
})

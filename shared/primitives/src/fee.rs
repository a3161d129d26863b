//! The base-fee rule both clients apply: the execution client when it builds and executes a
//! block, the consensus client when it checks a payload's fee fields without state.

/// Lowest base fee a block may have: 1 gwei (10^9 shor) per gas, so fees never vanish. A plain
/// transfer costs at least 0.000021 QOIN.
pub const MIN_BASE_FEE: u64 = crate::GWEI;

/// The EIP-1559 base fee of a child block from its parent's gas limit, gas used and base fee
/// (target = half the gas limit, at most ±12.5% a block, at least 1 up when above target),
/// never below `min`.
pub fn next_base_fee_with_min(gas_limit: u64, gas_used: u64, base_fee: u64, min: u64) -> u64 {
    let target = gas_limit / 2;
    let base = u128::from(base_fee);
    let next = if target == 0 || gas_used == target {
        base
    } else if gas_used > target {
        let delta = base * u128::from(gas_used - target) / u128::from(target) / 8;
        base + delta.max(1)
    } else {
        base - base * u128::from(target - gas_used) / u128::from(target) / 8
    };
    u64::try_from(next).unwrap_or(u64::MAX).max(min)
}

/// [`next_base_fee_with_min`] with the chain's floor, [`MIN_BASE_FEE`].
pub fn next_base_fee(gas_limit: u64, gas_used: u64, base_fee: u64) -> u64 {
    next_base_fee_with_min(gas_limit, gas_used, base_fee, MIN_BASE_FEE)
}

/// The genesis block's base fee: the genesis file's, at least [`MIN_BASE_FEE`].
pub fn genesis_base_fee(genesis: &crate::Genesis) -> u64 {
    u64::try_from(genesis.base_fee_per_gas).unwrap_or(u64::MAX).max(MIN_BASE_FEE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_fee_follows_gas_used_against_half_the_limit() {
        let g = 8 * MIN_BASE_FEE;
        assert_eq!(next_base_fee(30_000_000, 15_000_000, g), g, "at target: unchanged");
        assert_eq!(next_base_fee(30_000_000, 30_000_000, g), g + g / 8, "full: +12.5%");
        assert_eq!(next_base_fee(30_000_000, 0, g), g - g / 8, "empty: -12.5%");
        assert_eq!(next_base_fee_with_min(30_000_000, 15_000_001, 1000, 7), 1001, "just above: at least +1");
        assert_eq!(next_base_fee(30_000_000, 0, MIN_BASE_FEE), MIN_BASE_FEE, "never below the floor");
        assert_eq!(next_base_fee(30_000_000, 0, 7), MIN_BASE_FEE, "a lower parent is lifted to the floor");
        assert_eq!(next_base_fee(30_000_000, 30_000_000, u64::MAX), u64::MAX, "saturates");
    }
}
